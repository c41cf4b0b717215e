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
  /**
   * What this process runs: `all` (the single server: the site and the jobs),
   * `web` (the site; it only enqueues jobs) or `worker` (the jobs; health on
   * its port). `web` and `worker` need a job queue shared between processes.
   */
  role: z.enum(['all', 'web', 'worker']).default('all'),
  host: z.string().min(1).default('127.0.0.1'),
  port: int(0, 65535).default(3000),
  dataDir: z.string().min(1).default('./data'),
  publicUrl: z.url().optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * Which proxies may set X-Forwarded-For: false (none, the default), a number
   * of hops, or a comma-separated list of addresses or CIDR ranges (the load
   * balancer's). `true` trusts every hop, so a client can choose its own address.
   */
  trustProxy: z
    .union([z.boolean(), z.string()])
    .transform((v, ctx): boolean | number | string[] => {
      if (typeof v === 'boolean') return v;
      if (/^(true|yes|1)$/.test(v)) return true;
      if (/^(false|no|0|)$/.test(v)) return false;
      if (/^\d{1,2}$/.test(v)) return Number(v);
      const list = v
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean);
      if (list.every((a) => /^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(a))) return list;
      ctx.addIssue({ code: 'custom', message: 'true, false, a hop count, or a list of addresses or CIDR ranges' });
      return z.NEVER;
    })
    .default(false),
  /** Host names (with port) the site answers to when no public URL is set; others get 400. Empty: any well-formed one. */
  allowedHosts: csv.default([]),
  /** Where /metrics is served: a listener of its own, never the public one. */
  metricsHost: z.string().min(1).default('127.0.0.1'),
  metricsPort: int(0, 65535).default(9464),
  /** Signs the forms' CSRF tokens; every web server of a site shares it. A random one per data dir when unset. */
  secret: z.string().min(32, 'at least 32 characters').optional(),
  /** fsync each original and its directory before the upload is acknowledged. */
  blobFsync: bool.default(true),
  secureCookies: z.enum(['auto', 'always', 'never']).default('auto'),
  db: z.enum(['pglite', 'postgres']).default('pglite'),
  databaseUrl: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'a postgres:// URL')
    .optional(),
  patroniUrls: csv.optional(),
  replicaUrls: csv.optional(),
  /**
   * Sharded: the shard clusters, comma-separated, each
   * `name|postgres-url|patroni-rest-url+patroni-rest-url…` (a Patroni
   * cluster behind its own proxy, and its nodes' REST APIs, where its
   * replicas are found). With it, the 64 logical shards are placed by the
   * shard map in etcd.
   */
  shardClusters: csv.optional(),
  /** Sharded: the etcd member holding the shard map (http://host:port), its key, and a user that may read it. */
  shardMapEtcd: z.url().optional(),
  shardMapKey: z.string().min(1).default('/scaleout/shardmap'),
  shardMapUser: z.string().min(1).optional(),
  shardMapPassword: z.string().min(1).optional(),
  maxReplicaLagBytes: int(0, 2 ** 40).default(16 * 1024 * 1024),
  dbPoolSize: int(1, 500).default(10),
  blobDir: z.string().min(1).optional(),
  slowQueryMs: int(1, 600_000).default(200),
  cachePolicy: z.enum(['lru', 'lfu', 'fifo']).default('lru'),
  cacheMaxEntries: int(1, 10_000_000).default(10_000),
  /** The in-process cache's bound in MB of its values' JSON (0: entries only); V8 holds about 3× that. */
  cacheMaxMb: int(0, 100_000).default(8),
  cacheTtlSeconds: int(1, 86_400 * 7).default(60),
  sessionStore: z.enum(['database', 'memory']).default('database'),
  /**
   * Where sessions and Idempotency-Keys live: `auto`, in the durable Redis
   * when there is one (else `sessionStore` says); `database`, in PostgreSQL
   * even beside Redis. Two data centers use it: each has its own Redis, and
   * what a user's next request in the other one needs must cross with
   * PostgreSQL's stream and survive the loss of the data center it was made in.
   */
  durableState: z.enum(['auto', 'database']).default('auto'),
  /**
   * Sentinels (host:port, comma-separated) of a Redis tier. When set, sessions
   * and rate limits live in the durable Redis and the cache gets a Redis L2.
   */
  redisSentinels: csv.optional(),
  /** The CDN edges' base URLs (the first is this data center's), their purge token, and the origin behind them. */
  edgeUrls: csv.optional(),
  edgePurgeToken: z.string().min(1).optional(),
  originUrl: z.url().optional(),
  /** The Redis servers' password (requirepass) and the Sentinels' (their requirepass). */
  redisPassword: z.string().min(1).optional(),
  redisSentinelPassword: z.string().min(1).optional(),
  redisDurableName: z.string().min(1).default('scaleout-durable'),
  redisCacheName: z.string().min(1).default('scaleout-cache'),
  sessionTtlSeconds: int(60, 86_400 * 365).default(86_400 * 30),
  /**
   * Precomputed home feeds (fan-out on write): on for one process or with
   * Redis; off for several web servers without Redis, whose in-process
   * timelines could not see each other's pushes (they read the feed from the database).
   */
  feedTimelines: z.enum(['auto', 'off']).default('auto'),
  /**
   * Web servers on a PostgreSQL server without Redis: `auto` sends each cache
   * delete to every other server by NOTIFY (so they may cache sessions and
   * "liked by me" too); `off` lets each server's cache go stale until its TTL.
   * With Redis, `auto` is its channel only (one data center, one cache
   * Redis); `database` adds the NOTIFY on the primary, through which each data
   * center's cache Redis drops what the other's writes made stale.
   */
  cacheInvalidation: z.enum(['auto', 'off', 'database']).default('auto'),
  /** Photos kept per precomputed feed (Mastodon and Twitter keep 800); older pages come from the database. */
  feedMaxEntries: int(20, 100_000).default(800),
  /** A feed not read for this many days expires and is no longer pushed to; its next read rebuilds it. */
  feedActiveDays: int(1, 365).default(7),
  /** Authors with more followers are not fanned out: their photos are merged into feeds when read. */
  feedFanoutMaxFollowers: int(0, 10_000_000).default(10_000),
  /** In-process feeds kept by the single server (least recently read go first). */
  feedMaxTimelines: int(1, 10_000_000).default(20_000),
  jobAttempts: int(1, 50).default(3),
  jobBackoffMs: int(0, 600_000).default(500),
  workerConcurrency: int(1, 64).default(1),
  /**
   * Where jobs wait: `auto` is BullMQ on the durable Redis when the topology
   * has Redis and the site is split into web servers and workers (roles
   * `web` and `worker`), else the in-process queue.
   */
  queue: z.enum(['auto', 'memory', 'bullmq']).default('auto'),
  /** A job's lock (BullMQ): a worker that dies leaves its job to another within about this long. */
  jobLockMs: int(1000, 600_000).default(5000),
  /** How often each worker puts jobs whose lock expired back in the queue (BullMQ's stalled check). */
  jobStalledCheckMs: int(500, 600_000).default(2000),
  /** The sweeper: a photo processing this long with no job queued or running is enqueued again. */
  sweepAfterSeconds: int(1, 86_400).default(60),
  sweepEverySeconds: int(1, 3600).default(15),
  uploadMaxBytes: int(1024, 1024 * 1024 * 1024).default(15 * 1024 * 1024),
  /**
   * The time a request's body may take to arrive, from its headers: a client
   * sending a byte every few seconds is answered 408 and cut off, instead of
   * holding a connection (and an in-flight slot) for ever.
   */
  bodyTimeoutMs: int(1000, 3_600_000).default(30_000),
  /** How long a write's first answer is replayed to a repeat of its Idempotency-Key (a day, as Stripe's). */
  idempotencyTtlSeconds: int(1, 7 * 86_400).default(86_400),
  /**
   * How long a running request holds its Idempotency-Key: a repeat meanwhile
   * gets 409 with Retry-After; past it (the process died), a repeat runs.
   */
  idempotencyLeaseSeconds: int(1, 600).default(5),
  /**
   * Load shedding in the web server: the event loop's delay (ms, sustained
   * for a second) above which sign-ups, log-ins and uploads get 503 with
   * Retry-After; other writes at twice it, reads at four times. 0: off.
   */
  shedEventLoopDelayMs: int(0, 60_000).default(150),
  uploadMaxMegapixels: z.coerce.number().positive().max(1000).default(50),
  loginRateLimit: int(1, 1_000_000).default(10),
  accountLoginFailures: int(1, 1000).default(5),
  uploadRateLimit: int(1, 1_000_000).default(30),
  uploadMaxQueued: int(1, 10_000).default(5),
  imageDecodeTimeoutSeconds: int(1, 600).default(10),
  signupRateLimit: int(1, 1_000_000).default(5),
  rateLimitWindowSeconds: int(1, 86_400).default(60),
  /** On SIGTERM: failing health checks the balancer needs before it takes a server out (HAProxy's `fall`). */
  drainChecks: int(1, 100).default(2),
  /** On SIGTERM: the longest wait for the balancer to let go, before closing anyway. */
  drainMaxSeconds: int(0, 600).default(15),
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** Environment variable for each option; the CLI flags use the option names. */
export const envNames: Record<keyof Config, string> = {
  role: 'SCALEOUT_ROLE',
  host: 'SCALEOUT_HOST',
  port: 'SCALEOUT_PORT',
  dataDir: 'SCALEOUT_DATA_DIR',
  publicUrl: 'SCALEOUT_PUBLIC_URL',
  logLevel: 'SCALEOUT_LOG_LEVEL',
  trustProxy: 'SCALEOUT_TRUST_PROXY',
  allowedHosts: 'SCALEOUT_ALLOWED_HOSTS',
  metricsHost: 'SCALEOUT_METRICS_HOST',
  metricsPort: 'SCALEOUT_METRICS_PORT',
  secret: 'SCALEOUT_SECRET',
  blobFsync: 'SCALEOUT_BLOB_FSYNC',
  secureCookies: 'SCALEOUT_SECURE_COOKIES',
  db: 'SCALEOUT_DB',
  databaseUrl: 'SCALEOUT_DATABASE_URL',
  patroniUrls: 'SCALEOUT_PATRONI_URLS',
  shardClusters: 'SCALEOUT_SHARD_CLUSTERS',
  shardMapEtcd: 'SCALEOUT_SHARD_MAP_ETCD',
  shardMapKey: 'SCALEOUT_SHARD_MAP_KEY',
  shardMapUser: 'SCALEOUT_SHARD_MAP_USER',
  shardMapPassword: 'SCALEOUT_SHARD_MAP_PASSWORD',
  replicaUrls: 'SCALEOUT_REPLICA_URLS',
  maxReplicaLagBytes: 'SCALEOUT_MAX_REPLICA_LAG_BYTES',
  dbPoolSize: 'SCALEOUT_DB_POOL_SIZE',
  blobDir: 'SCALEOUT_BLOB_DIR',
  slowQueryMs: 'SCALEOUT_SLOW_QUERY_MS',
  cachePolicy: 'SCALEOUT_CACHE_POLICY',
  cacheMaxEntries: 'SCALEOUT_CACHE_MAX_ENTRIES',
  cacheMaxMb: 'SCALEOUT_CACHE_MAX_MB',
  cacheTtlSeconds: 'SCALEOUT_CACHE_TTL_SECONDS',
  sessionStore: 'SCALEOUT_SESSION_STORE',
  durableState: 'SCALEOUT_DURABLE_STATE',
  redisSentinels: 'SCALEOUT_REDIS_SENTINELS',
  edgeUrls: 'SCALEOUT_EDGE_URLS',
  edgePurgeToken: 'SCALEOUT_EDGE_PURGE_TOKEN',
  originUrl: 'SCALEOUT_ORIGIN_URL',
  redisPassword: 'SCALEOUT_REDIS_PASSWORD',
  redisSentinelPassword: 'SCALEOUT_REDIS_SENTINEL_PASSWORD',
  redisDurableName: 'SCALEOUT_REDIS_DURABLE_NAME',
  redisCacheName: 'SCALEOUT_REDIS_CACHE_NAME',
  sessionTtlSeconds: 'SCALEOUT_SESSION_TTL_SECONDS',
  feedTimelines: 'SCALEOUT_FEED_TIMELINES',
  cacheInvalidation: 'SCALEOUT_CACHE_INVALIDATION',
  feedMaxEntries: 'SCALEOUT_FEED_MAX_ENTRIES',
  feedActiveDays: 'SCALEOUT_FEED_ACTIVE_DAYS',
  feedFanoutMaxFollowers: 'SCALEOUT_FEED_FANOUT_MAX_FOLLOWERS',
  feedMaxTimelines: 'SCALEOUT_FEED_MAX_TIMELINES',
  jobAttempts: 'SCALEOUT_JOB_ATTEMPTS',
  jobBackoffMs: 'SCALEOUT_JOB_BACKOFF_MS',
  workerConcurrency: 'SCALEOUT_WORKER_CONCURRENCY',
  queue: 'SCALEOUT_QUEUE',
  jobLockMs: 'SCALEOUT_JOB_LOCK_MS',
  jobStalledCheckMs: 'SCALEOUT_JOB_STALLED_CHECK_MS',
  sweepAfterSeconds: 'SCALEOUT_SWEEP_AFTER_SECONDS',
  sweepEverySeconds: 'SCALEOUT_SWEEP_EVERY_SECONDS',
  uploadMaxBytes: 'SCALEOUT_UPLOAD_MAX_BYTES',
  bodyTimeoutMs: 'SCALEOUT_BODY_TIMEOUT_MS',
  idempotencyTtlSeconds: 'SCALEOUT_IDEMPOTENCY_TTL_SECONDS',
  idempotencyLeaseSeconds: 'SCALEOUT_IDEMPOTENCY_LEASE_SECONDS',
  shedEventLoopDelayMs: 'SCALEOUT_SHED_EVENT_LOOP_DELAY_MS',
  uploadMaxMegapixels: 'SCALEOUT_UPLOAD_MAX_MEGAPIXELS',
  loginRateLimit: 'SCALEOUT_LOGIN_RATE_LIMIT',
  accountLoginFailures: 'SCALEOUT_ACCOUNT_LOGIN_FAILURES',
  uploadRateLimit: 'SCALEOUT_UPLOAD_RATE_LIMIT',
  uploadMaxQueued: 'SCALEOUT_UPLOAD_MAX_QUEUED',
  imageDecodeTimeoutSeconds: 'SCALEOUT_IMAGE_DECODE_TIMEOUT_SECONDS',
  signupRateLimit: 'SCALEOUT_SIGNUP_RATE_LIMIT',
  rateLimitWindowSeconds: 'SCALEOUT_RATE_LIMIT_WINDOW_SECONDS',
  drainChecks: 'SCALEOUT_DRAIN_CHECKS',
  drainMaxSeconds: 'SCALEOUT_DRAIN_MAX_SECONDS',
};

/**
 * Limits for seeding and load tests (`up --load-test`, the benchmarks): they
 * make hundreds of accounts and photos from one address; the defaults are for people.
 */
export const loadTestLimits: Record<string, string> = {
  SCALEOUT_SIGNUP_RATE_LIMIT: '1000000',
  SCALEOUT_LOGIN_RATE_LIMIT: '1000000',
  SCALEOUT_UPLOAD_RATE_LIMIT: '1000000',
  SCALEOUT_UPLOAD_MAX_QUEUED: '10000',
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

/**
 * Configuration as the environment of a process that will read it back with
 * `loadConfig`: each option under its env name, lists comma-separated. The
 * one way the orchestrator tells web and worker processes where things are.
 */
export function renderEnv(config: Partial<ConfigInput>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined) continue;
    const name = envNames[key as keyof Config];
    if (!name) throw new Error(`no such option: ${key}`);
    env[name] = Array.isArray(value) ? value.join(',') : String(value);
  }
  return env;
}
