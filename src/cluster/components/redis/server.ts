import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { httpStatus, requireBinaries, type StartedProcess, sleep, startProcess, waitUntil } from '../../process.ts';
import { writePrivate } from '../../run/private.ts';
import type { SpecOf, Topology } from '../../topology/schema.ts';
import { redisMasterName } from '../../topology/select.ts';

type RedisSpec = SpecOf<'redis'>;
type Sentinel = SpecOf<'redisSentinel'>;
type RedisExporter = SpecOf<'redisExporter'>;
type Address = { host: string; port: number };

/** The passwords of a data center's Redis tier: the servers' and the Sentinels'. */
export interface RedisSecrets {
  redis: string;
  sentinel: string;
}

/**
 * A Redis server's configuration. The durable tier keeps an append-only file
 * (fsync every second) and never evicts: sessions and rate limits must not
 * vanish under memory pressure. The cache tier keeps nothing on disk and
 * evicts under `maxmemory`.
 */
export function redisConfig(t: Topology, spec: RedisSpec, dir: string, password: string, master?: Address): string {
  const common = [
    `bind ${spec.listen.host}`,
    `port ${spec.listen.port}`,
    // Nothing without the password: clients, replicas (masterauth) and the Sentinels (auth-pass) all give it.
    `requirepass ${password}`,
    `masterauth ${password}`,
    'protected-mode yes',
    `dir ${dir}`,
    'daemonize no',
    'logfile ""',
    'save ""',
    `replica-announce-ip ${spec.listen.host}`,
    'repl-diskless-sync yes',
    'repl-diskless-sync-delay 0',
  ];
  const tier =
    spec.tier === 'durable'
      ? ['appendonly yes', 'appendfsync everysec', 'maxmemory-policy noeviction']
      : ['appendonly no', `maxmemory ${t.options.cacheMaxMemory}`, `maxmemory-policy ${t.options.cacheEviction}`];
  const replica = master ? [`replicaof ${master.host} ${master.port}`] : [];
  return `${[...common, ...tier, ...replica].join('\n')}\n`;
}

/** A Sentinel's configuration: it watches the master of each tier (quorum 2 of 3), and rewrites this file. */
export function sentinelConfig(spec: Sentinel, masters: RedisSpec[], dir: string, secrets: RedisSecrets): string {
  const lines = [
    `bind ${spec.listen.host}`,
    `port ${spec.listen.port}`,
    // A Sentinel answers only with its password, and gives it to the other Sentinels (sentinel-pass).
    `requirepass ${secrets.sentinel}`,
    `sentinel sentinel-pass ${secrets.sentinel}`,
    'daemonize no',
    'logfile ""',
    `dir ${dir}`,
    `sentinel announce-ip ${spec.listen.host}`,
    'sentinel resolve-hostnames no',
  ];
  for (const m of masters) {
    const name = redisMasterName(m.tier);
    lines.push(
      `sentinel monitor ${name} ${m.listen.host} ${m.listen.port} 2`,
      `sentinel auth-pass ${name} ${secrets.redis}`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 3000`,
      `sentinel parallel-syncs ${name} 1`,
    );
  }
  return `${lines.join('\n')}\n`;
}

const client = (host: string, port: number, password?: string) =>
  new Redis({
    host,
    port,
    password,
    lazyConnect: true,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  });

/** Runs one command against a server that needs no password, or null when it does not answer. */
export const redisCommand = (host: string, port: number, ...args: string[]): Promise<unknown> =>
  redisCall({ host, port }, ...args);

/** Runs one command against a server (with its password), or null when it does not answer or refuses. */
export async function redisCall(
  at: { host: string; port: number; password?: string },
  ...args: string[]
): Promise<unknown> {
  const c = client(at.host, at.port, at.password);
  c.on('error', () => {});
  try {
    await c.connect();
    return await c.call(args[0] as string, ...args.slice(1));
  } catch {
    return null;
  } finally {
    c.disconnect();
  }
}

/** `master` or `replica` as the server itself says (ROLE), or null when it does not answer. */
export async function redisRole(
  spec: RedisSpec,
  password: string,
): Promise<{ role: 'master' | 'replica'; linkUp: boolean } | null> {
  const role = (await redisCall({ ...spec.listen, password }, 'ROLE')) as unknown[] | null;
  if (!Array.isArray(role)) return null;
  if (role[0] === 'master') return { role: 'master', linkUp: true };
  return { role: 'replica', linkUp: role[3] === 'connected' };
}

/** What a Sentinel knows of each tier's master: its address, replicas and the other Sentinels. */
export async function sentinelView(
  spec: Sentinel,
  password: string,
): Promise<{ name: string; address: string; replicas: number; sentinels: number; flags: string }[] | null> {
  const masters = (await redisCall({ ...spec.listen, password }, 'SENTINEL', 'MASTERS')) as string[][] | null;
  if (!Array.isArray(masters)) return null;
  return masters.map((fields) => {
    const m = new Map<string, string>();
    for (let i = 0; i + 1 < fields.length; i += 2) m.set(String(fields[i]), String(fields[i + 1]));
    return {
      name: m.get('name') ?? '',
      address: `${m.get('ip')}:${m.get('port')}`,
      replicas: Number(m.get('num-slaves') ?? 0),
      sentinels: Number(m.get('num-other-sentinels') ?? 0) + 1,
      flags: m.get('flags') ?? '',
    };
  });
}

/** Starts a Redis server, as a replica of `master` when given, and waits until it answers (and replicates). */
export async function startRedis(
  t: Topology,
  spec: RedisSpec,
  runDir: string,
  password: string,
  master: Address | undefined,
  /**
   * A start at `up` waits for the role it was started in, and a replica's for its link to the master (the
   * master was started first). A restart (`restarting`) does not: after a whole data center's loss its master may
   * come back later, and a replica links when the master is there (its health says so meanwhile); and the
   * Sentinels may change its role at once (promote a replica whose master is still gone, demote a master
   * they no longer name) before the first check sees the one it started in. A server that answers is started.
   */
  o: { restarting?: boolean } = {},
): Promise<StartedProcess> {
  requireBinaries(['/usr/bin/redis-server'], 'redis-server');
  const dir = path.join(runDir, spec.name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const conf = path.join(dir, 'redis.conf');
  writePrivate(conf, redisConfig(t, spec, dir, password, master));
  const proc = startProcess({
    command: '/usr/bin/redis-server',
    args: [conf],
    log: path.join(runDir, 'logs', `${spec.name}.log`),
    cwd: dir,
  });
  await waitUntil(
    async () => {
      const r = await redisRole(spec, password);
      if (r === null) return false;
      if (o.restarting) return true;
      return master ? r.role === 'replica' && r.linkUp : r.role === 'master';
    },
    30_000,
    `${spec.name} ${o.restarting ? 'answering' : master ? 'replicating' : 'answering as the master'}`,
  );
  return proc;
}

export async function startSentinel(
  spec: Sentinel,
  masters: RedisSpec[],
  runDir: string,
  secrets: RedisSecrets,
): Promise<StartedProcess> {
  requireBinaries(['/usr/bin/redis-sentinel'], 'redis-sentinel');
  const dir = path.join(runDir, spec.name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const conf = path.join(dir, 'sentinel.conf');
  // Sentinel keeps what it learnt (the current masters, the other Sentinels) in this file: a restart reuses it.
  if (!existsSync(conf)) writePrivate(conf, sentinelConfig(spec, masters, dir, secrets));
  return startProcess({
    command: '/usr/bin/redis-sentinel',
    args: [conf],
    log: path.join(runDir, 'logs', `${spec.name}.log`),
    cwd: dir,
  });
}

/** Every Sentinel sees each master with its replica and the two other Sentinels (hello messages take ≈ 2 s). */
export async function waitForSentinels(sentinels: Sentinel[], masters: RedisSpec[], password: string): Promise<void> {
  await waitUntil(
    async () => {
      for (const s of sentinels) {
        const view = await sentinelView(s, password);
        if (!view || view.length !== masters.length) return false;
        if (view.some((m) => m.replicas < 1 || m.sentinels < sentinels.length)) return false;
      }
      return true;
    },
    30_000,
    'every Sentinel sees every master, its replica and the other Sentinels',
  );
}

/** Debian's prometheus-redis-exporter for one Redis server. */
export async function startRedisExporter(
  spec: RedisExporter,
  server: RedisSpec,
  runDir: string,
  password: string,
): Promise<StartedProcess> {
  requireBinaries(['/usr/bin/prometheus-redis-exporter'], 'prometheus-redis-exporter');
  const proc = startProcess({
    command: '/usr/bin/prometheus-redis-exporter',
    args: [
      '-redis.addr',
      `redis://${server.listen.host}:${server.listen.port}`,
      '-web.listen-address',
      `${spec.listen.host}:${spec.listen.port}`,
    ],
    // In its environment, which only root can read (never on the command line, which every user can).
    env: { REDIS_PASSWORD: password },
    log: path.join(runDir, 'logs', `${spec.name}.log`),
  });
  await waitUntil(async () => (await redisExporterUp(spec)) === 200, 30_000, spec.name);
  return proc;
}

export const redisExporterUp = (spec: RedisExporter) =>
  httpStatus(`http://${spec.listen.host}:${spec.listen.port}/metrics`);

/**
 * Where a tier's master is now, as the Sentinels say (the first that answers),
 * or null when none does. A restarted server joins it as a replica.
 */
export async function currentMaster(
  sentinels: Sentinel[],
  tier: 'durable' | 'cache',
  password: string,
): Promise<Address | null> {
  for (const s of sentinels) {
    const addr = (await redisCall(
      { ...s.listen, password },
      'SENTINEL',
      'GET-MASTER-ADDR-BY-NAME',
      redisMasterName(tier),
    )) as string[] | null;
    if (Array.isArray(addr) && addr.length === 2) return { host: String(addr[0]), port: Number(addr[1]) };
  }
  return null;
}

/**
 * Whether the Sentinels see a replica of the tier that is not down: one a
 * failover can promote (or is promoting). A replica flagged `disconnected`
 * counts: the Sentinel's own link to it drops for a moment while it is being
 * promoted (Sentinel kills the clients of the replica it promotes); a dead
 * one is flagged down after `down-after-milliseconds`. Null when no Sentinel
 * answers.
 */
export async function promotableReplica(
  sentinels: Sentinel[],
  tier: 'durable' | 'cache',
  password: string,
): Promise<boolean | null> {
  for (const s of sentinels) {
    const replicas = (await redisCall({ ...s.listen, password }, 'SENTINEL', 'REPLICAS', redisMasterName(tier))) as
      | string[][]
      | null;
    if (!Array.isArray(replicas)) continue;
    return replicas.some((fields) => {
      const flags = fields[fields.indexOf('flags') + 1] ?? '';
      return !/s_down|o_down/.test(flags);
    });
  }
  return null;
}

/**
 * The master a server that is started again should follow. When the
 * Sentinels still name the server itself (it was the master when it died),
 * a failover to one of its replicas may be under way: a vote split between
 * the Sentinels is tried again only after twice the failover timeout. A
 * server started as master then takes writes that the promotion drops when
 * it makes it a replica (and clients connected to it get READONLY). So while
 * a promotable replica exists, this waits (up to `waitMs`; a Sentinel that
 * does not answer meanwhile is asked again) for the Sentinels to name
 * another master. It answers null (start as master) when no Sentinel
 * answers at first (they are down too: a whole data center coming back),
 * when they say no replica can take over, or when none was named in time.
 */
export async function masterToFollow(
  self: Address,
  sentinels: Sentinel[],
  tier: 'durable' | 'cache',
  password: string,
  opts: { waitMs?: number; everyMs?: number } = {},
): Promise<Address | null> {
  const isSelf = (a: Address) => a.host === self.host && a.port === self.port;
  const deadline = Date.now() + (opts.waitMs ?? 20_000);
  for (let first = true; ; first = false) {
    const master = await currentMaster(sentinels, tier, password);
    if (master && !isSelf(master)) return master;
    if (!master && first) return null;
    if (master && (await promotableReplica(sentinels, tier, password)) === false) return null;
    if (Date.now() >= deadline) return null;
    await sleep(opts.everyMs ?? 250);
  }
}
