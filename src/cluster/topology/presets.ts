import { type AddressPlan, addressPlan, octetFor, type Scope } from './address.ts';
import { buildMultiDc } from './multi-dc.ts';
import {
  type AutoscalePolicy,
  maxWebServers,
  type ProcessSpec,
  type SpecOf,
  type Topology,
  topologySchema,
} from './schema.ts';
import { webMetricsPort } from './select.ts';

export interface PresetOptions {
  name?: string;
  /** The second octet of every address (127.<octet>.x.y), so two topologies can run at once. */
  octet?: number;
  /** Port of the public endpoint. */
  port?: number;
  webServers?: number;
  replicas?: number;
  synchronous?: boolean;
  patroniTtl?: number;
  cacheMaxMemory?: string;
  cacheEviction?: 'allkeys-lru' | 'allkeys-lfu' | 'volatile-lru' | 'volatile-lfu';
  /** Start a supervisor that restarts what dies (on by default). */
  supervise?: boolean;
  /** The autoscaler's policy (stateless). */
  autoscale?: Partial<AutoscalePolicy>;
  /** Workers at start (queue). */
  workers?: number;
  /** The worker tier's autoscaler (queue). */
  workerAutoscale?: Partial<AutoscalePolicy>;
  /** Admission control at the balancer: requests per web server at once, and how long others may wait. */
  maxRequestsPerServer?: number;
  queueTimeoutMs?: number;
  queueDepthPerServer?: number;
  /** V8's old-space limit of each web server (MB). */
  webHeapMb?: number;
  /** The distance between two data centers, each way, in ms (multi-dc; 20). */
  interDcDelayMs?: number;
  /** Shard clusters (sharded): Patroni clusters the 64 logical shards are placed on, each a primary and `replicas`. */
  shardClusters?: number;
}

export const presets = ['single', 'db', 'lb', 'cache', 'stateless', 'cdn', 'queue', 'sharded', 'multi-dc'] as const;
export type PresetName = (typeof presets)[number];

/** The name of shard cluster `i` (0-based): pg-a, pg-b, … */
export const shardClusterName = (i: number) => `pg-${String.fromCharCode(97 + i)}`;
/** At most this many shard clusters (their addresses: 10 hosts each in the database block). */
export const maxShardClusters = 8;

/** The name of the one data center of every preset so far. */
export const defaultDataCenter = 'dc1';

/** Web server `index` (1–16) of a data center: web-<index> at host <index> of its web block, port 3000. */
export function webServerSpec(plan: AddressPlan, dataCenter: string, index: number): SpecOf<'web'> {
  const host = plan.ip({ dataCenter }, 'web', index);
  return {
    kind: 'web',
    name: plan.name({ dataCenter }, `web-${index}`),
    listen: { host, port: 3000 },
    metrics: { host, port: webMetricsPort },
    db: 'postgres',
  };
}

/** Worker `index` (1–16) of a data center: worker-<index> at host <index> of its worker block, health on port 3000. */
export function workerSpec(plan: AddressPlan, dataCenter: string, index: number): SpecOf<'worker'> {
  const host = plan.ip({ dataCenter }, 'worker', index);
  return {
    kind: 'worker',
    name: plan.name({ dataCenter }, `worker-${index}`),
    listen: { host, port: 3000 },
    metrics: { host, port: webMetricsPort },
  };
}

/**
 * A data center's Redis: two roles, as Mastodon's scaling guide separates
 * them (`durable` at hosts 11–12 of its cache block, `cache` at 21–22), each
 * a master and a replica, and three Sentinels (hosts 101–103) watching both.
 */
export function redisTiers(plan: AddressPlan, dataCenter: string): ProcessSpec[] {
  const dc: Scope = { dataCenter };
  const out: ProcessSpec[] = [];
  for (const [t, tier] of [
    [1, 'durable'],
    [2, 'cache'],
  ] as const) {
    const master = plan.name(dc, `redis-${tier}-1`);
    out.push({ kind: 'redis', name: master, listen: plan.at(dc, 'cache', t * 10 + 1, 6379), tier });
    out.push({
      kind: 'redis',
      name: plan.name(dc, `redis-${tier}-2`),
      listen: plan.at(dc, 'cache', t * 10 + 2, 6379),
      tier,
      replicaOf: master,
    });
  }
  for (let i = 1; i <= 3; i++) {
    out.push({
      kind: 'redisSentinel',
      name: plan.name(dc, `sentinel-${i}`),
      listen: plan.at(dc, 'cache', 100 + i, 26379),
    });
  }
  return out;
}

/**
 * Shard cluster `c` (0-based) of a data center: its Patroni nodes (a primary
 * and `replicas`) at hosts 10c+11… of the database block, named after the
 * cluster (pg-a-1, pg-a-2), and its proxy at host 101+c (db-proxy-a).
 */
export function shardCluster(plan: AddressPlan, dc: Scope, c: number, replicas: number): ProcessSpec[] {
  const cluster = shardClusterName(c);
  const out: ProcessSpec[] = [];
  for (let i = 1; i <= 1 + replicas; i++) {
    out.push({
      kind: 'patroni',
      name: `${cluster}-${i}`,
      cluster,
      postgres: plan.at(dc, 'database', 10 * c + 10 + i, 5432),
      rest: plan.at(dc, 'database', 10 * c + 10 + i, 8008),
    });
  }
  out.push({
    kind: 'dbProxy',
    name: `db-proxy-${cluster.slice(3)}`,
    cluster,
    primary: plan.at(dc, 'database', 101 + c, 5000),
    replicas: plan.at(dc, 'database', 101 + c, 5001),
    stats: plan.at(dc, 'database', 101 + c, 7000),
  });
  return out;
}

/**
 * A chapter step as a topology: `single` one process; `db` + its own
 * PostgreSQL; `lb` HAProxy, web servers and Patroni; `cache` + the Redis
 * tier; `stateless` + the web tier's autoscaler; `cdn` + the Varnish edge;
 * `queue` + BullMQ and worker processes scaled by queue depth (web servers
 * only enqueue); `sharded` is `cache` with the users' data over several
 * Patroni clusters (`pg-a`, `pg-b`, each a primary and a replica, sharing the
 * etcd), 64 logical shards placed on them by a map in etcd. Each is one data center and
 * a global scope (Prometheus, the dashboard, the supervisor, the host exporter).
 */
export function buildPreset(preset: PresetName, o: PresetOptions = {}): Topology {
  if (preset === 'multi-dc') return buildMultiDc(o);
  const name = o.name ?? preset;
  const dataCenter = defaultDataCenter;
  const plan = addressPlan(o.octet ?? octetFor(name), [dataCenter]);
  const dc: Scope = { dataCenter };
  const withWorkers = preset === 'queue';
  const withEdge = preset === 'cdn' || withWorkers;
  const sharded = preset === 'sharded';
  const clustered = preset === 'lb' || preset === 'cache' || preset === 'stateless' || withEdge || sharded;
  const withRedis = preset === 'cache' || preset === 'stateless' || withEdge || sharded;
  const webCount = clustered ? (o.webServers ?? 2) : 1;
  if (webCount > maxWebServers) throw new Error(`at most ${maxWebServers} web servers`);
  const processes: ProcessSpec[] = [];
  if (preset === 'db') processes.push({ kind: 'postgres', name: 'postgres', listen: plan.at(dc, 'database', 1, 5432) });
  if (clustered) {
    processes.push({
      kind: 'etcd',
      name: 'etcd',
      client: plan.at(dc, 'coordination', 1, 2379),
      peer: plan.at(dc, 'coordination', 1, 2380),
    });
    if (sharded) {
      const m = o.shardClusters ?? 2;
      if (m < 1 || m > maxShardClusters) throw new Error(`1 to ${maxShardClusters} shard clusters`);
      for (let c = 0; c < m; c++) processes.push(...shardCluster(plan, dc, c, o.replicas ?? 1));
    } else {
      for (let i = 1; i <= 1 + (o.replicas ?? 2); i++) {
        processes.push({
          kind: 'patroni',
          name: `pg-${i}`,
          postgres: plan.at(dc, 'database', i, 5432),
          rest: plan.at(dc, 'database', i, 8008),
        });
      }
      processes.push({
        kind: 'dbProxy',
        name: 'db-proxy',
        primary: plan.at(dc, 'database', 100, 5000),
        replicas: plan.at(dc, 'database', 100, 5001),
        stats: plan.at(dc, 'database', 100, 7000),
      });
    }
  }
  if (withRedis) processes.push(...redisTiers(plan, dataCenter));
  for (let i = 1; i <= webCount; i++) {
    if (clustered) processes.push(webServerSpec(plan, dataCenter, i));
    else {
      const listen = plan.at(dc, 'edge', 1, o.port ?? 3000);
      processes.push({
        kind: 'web',
        name: 'web-1',
        listen,
        metrics: { host: listen.host, port: webMetricsPort },
        db: preset === 'single' ? 'pglite' : 'postgres',
      });
    }
  }
  const workerCount = withWorkers ? (o.workers ?? 2) : 0;
  for (let i = 1; i <= workerCount; i++) processes.push(workerSpec(plan, dataCenter, i));
  if (clustered) {
    processes.push({
      kind: 'loadBalancer',
      name: 'load-balancer',
      listen: plan.at(dc, 'balancer', 1, o.port ?? 8080),
      stats: plan.at(dc, 'web', 100, 8404),
      ...(withEdge ? { fromEdge: plan.at(dc, 'balancer', 1, (o.port ?? 8080) + 1000) } : {}),
    });
  }
  if (withEdge) {
    // The CDN edge in front of the balancer: the site's public address (port 80 of the edge's host, or --port + 1).
    processes.push({
      kind: 'varnish',
      name: 'edge',
      listen: plan.at(dc, 'edge', 10, (o.port ?? 8080) + 1),
      admin: plan.at(dc, 'edge', 10, 6082),
      memory: '64m',
    });
    processes.push({
      kind: 'varnishExporter',
      name: 'edge-exporter',
      listen: plan.at(dc, 'observability', 50, 9131),
      edge: 'edge',
    });
  }
  // One exporter per PostgreSQL server: Debian's 0.11 cannot serve several data sources at once.
  processes
    .filter((p) => p.kind === 'postgres' || p.kind === 'patroni')
    .forEach((s, i) => {
      processes.push({
        kind: 'postgresExporter',
        name: `${s.name}-exporter`,
        listen: plan.at(dc, 'observability', 10 + i, 9187),
        server: s.name,
      });
    });
  processes
    .filter((p) => p.kind === 'redis')
    .forEach((r, i) => {
      processes.push({
        kind: 'redisExporter',
        name: `${r.name}-exporter`,
        listen: plan.at(dc, 'observability', 30 + i, 9121),
        server: r.name,
      });
    });
  const global: ProcessSpec[] = [
    { kind: 'hostExporter', name: 'host-exporter', listen: plan.at('global', 'observability', 5, 9100) },
    { kind: 'prometheus', name: 'prometheus', listen: plan.at('global', 'observability', 1, 9090) },
    { kind: 'dashboard', name: 'dashboard', listen: plan.at('global', 'observability', 2, 8090) },
  ];
  if (o.supervise ?? true) {
    global.push({ kind: 'supervisor', name: 'supervisor', listen: plan.at('global', 'control', 3, 8091) });
  }
  const autoscale =
    preset === 'stateless' || withEdge
      ? { min: webCount, max: Math.max(webCount, 6), target: 2, ...o.autoscale }
      : undefined;
  // One job per worker slot: more queued than the slots can take scales the tier up.
  const workerAutoscale = withWorkers
    ? { min: 1, max: Math.max(workerCount, 4), target: 1, ...o.workerAutoscale }
    : undefined;
  return topologySchema.parse({
    name,
    preset,
    octet: plan.octet,
    options: {
      synchronous: o.synchronous ?? true,
      patroniTtl: o.patroniTtl ?? 5,
      logicalReplication: sharded,
      cacheMaxMemory: o.cacheMaxMemory ?? '64mb',
      cacheEviction: o.cacheEviction ?? 'allkeys-lru',
      autoscale,
      jobs: withWorkers ? 'workers' : 'web',
      workerAutoscale,
      maxRequestsPerServer: o.maxRequestsPerServer,
      queueTimeoutMs: o.queueTimeoutMs,
      queueDepthPerServer: o.queueDepthPerServer,
      webHeapMb: o.webHeapMb,
    },
    global: { processes: global },
    dataCenters: [{ name: dataCenter, processes }],
  });
}
