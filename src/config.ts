import path from 'node:path';
import { z } from 'zod';

/**
 * The one typed configuration of a scaleout process. It is read once, from
 * environment variables and CLI flags (flags win), and nothing else in the
 * code reads process.env.
 */
const bool = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes'),
]);
/** A comma-separated list; blanks dropped. */
const csv = z.string().transform((s) =>
  s
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean),
);
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const configSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: int(0, 65535).default(3000),
  dataDir: z.string().min(1).default('./data'),
  publicUrl: z.url().optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  trustProxy: bool.default(false),
  secureCookies: z.enum(['auto', 'always', 'never']).default('auto'),
  db: z.enum(['pglite', 'postgres']).default('pglite'),
  databaseUrl: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'a postgres:// URL')
    .optional(),
  patroniUrls: csv.optional(),
  replicaUrls: csv.optional(),
  maxReplicaLagBytes: int(0, 2 ** 40).default(16 * 1024 * 1024),
  dbPoolSize: int(1, 500).default(10),
  blobDir: z.string().min(1).optional(),
  slowQueryMs: int(1, 600_000).default(200),
  admins: csv.default([]),
  cachePolicy: z.enum(['lru', 'lfu', 'fifo']).default('lru'),
  cacheMaxEntries: int(1, 10_000_000).default(10_000),
  cacheTtlSeconds: int(1, 86_400 * 7).default(60),
  sessionStore: z.enum(['database', 'memory']).default('database'),
  sessionTtlSeconds: int(60, 86_400 * 365).default(86_400 * 30),
  jobAttempts: int(1, 50).default(3),
  jobBackoffMs: int(0, 600_000).default(500),
  workerConcurrency: int(1, 64).default(1),
  uploadMaxBytes: int(1024, 1024 * 1024 * 1024).default(15 * 1024 * 1024),
  uploadMaxMegapixels: z.coerce.number().positive().max(1000).default(50),
  loginRateLimit: int(1, 1_000_000).default(10),
  signupRateLimit: int(1, 1_000_000).default(5),
  rateLimitWindowSeconds: int(1, 86_400).default(60),
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** Environment variable for each option; the CLI flags use the option names. */
export const envNames: Record<keyof Config, string> = {
  host: 'SCALEOUT_HOST',
  port: 'SCALEOUT_PORT',
  dataDir: 'SCALEOUT_DATA_DIR',
  publicUrl: 'SCALEOUT_PUBLIC_URL',
  logLevel: 'SCALEOUT_LOG_LEVEL',
  trustProxy: 'SCALEOUT_TRUST_PROXY',
  secureCookies: 'SCALEOUT_SECURE_COOKIES',
  db: 'SCALEOUT_DB',
  databaseUrl: 'SCALEOUT_DATABASE_URL',
  patroniUrls: 'SCALEOUT_PATRONI_URLS',
  replicaUrls: 'SCALEOUT_REPLICA_URLS',
  maxReplicaLagBytes: 'SCALEOUT_MAX_REPLICA_LAG_BYTES',
  dbPoolSize: 'SCALEOUT_DB_POOL_SIZE',
  blobDir: 'SCALEOUT_BLOB_DIR',
  slowQueryMs: 'SCALEOUT_SLOW_QUERY_MS',
  admins: 'SCALEOUT_ADMINS',
  cachePolicy: 'SCALEOUT_CACHE_POLICY',
  cacheMaxEntries: 'SCALEOUT_CACHE_MAX_ENTRIES',
  cacheTtlSeconds: 'SCALEOUT_CACHE_TTL_SECONDS',
  sessionStore: 'SCALEOUT_SESSION_STORE',
  sessionTtlSeconds: 'SCALEOUT_SESSION_TTL_SECONDS',
  jobAttempts: 'SCALEOUT_JOB_ATTEMPTS',
  jobBackoffMs: 'SCALEOUT_JOB_BACKOFF_MS',
  workerConcurrency: 'SCALEOUT_WORKER_CONCURRENCY',
  uploadMaxBytes: 'SCALEOUT_UPLOAD_MAX_BYTES',
  uploadMaxMegapixels: 'SCALEOUT_UPLOAD_MAX_MEGAPIXELS',
  loginRateLimit: 'SCALEOUT_LOGIN_RATE_LIMIT',
  signupRateLimit: 'SCALEOUT_SIGNUP_RATE_LIMIT',
  rateLimitWindowSeconds: 'SCALEOUT_RATE_LIMIT_WINDOW_SECONDS',
};

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
    this.name = 'ConfigError';
  }
}

/**
 * Builds the config from an environment and explicit overrides (CLI flags or
 * test settings). Every problem is reported at once in a ConfigError.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  overrides: Partial<Record<keyof Config, unknown>> = {},
): Config {
  const raw: Record<string, unknown> = {};
  for (const [key, envName] of Object.entries(envNames)) {
    const value = env[envName];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined) raw[key] = value;
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const key = String(issue.path[0] ?? '');
        const source = key in envNames ? ` (${envNames[key as keyof Config]} or --${kebab(key)})` : '';
        return issue.code === 'unrecognized_keys'
          ? `unknown option(s): ${issue.keys.join(', ')}`
          : `${key}${source}: ${issue.message}`;
      }),
    );
  }
  const config = parsed.data;
  if (config.db === 'postgres' && !config.databaseUrl) {
    throw new ConfigError([`databaseUrl (${envNames.databaseUrl}): required when db is postgres`]);
  }
  const dataDir = path.resolve(config.dataDir);
  return { ...config, dataDir, blobDir: path.resolve(config.blobDir ?? path.join(dataDir, 'blobs')) };
}

export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Where `scaleout up` keeps each topology's run directory (configs, data, logs, PIDs). */
export function runRoot(env: Record<string, string | undefined>): string {
  return path.resolve(env.SCALEOUT_RUN_ROOT || '/tmp/scaleout');
}
