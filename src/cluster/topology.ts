import { z } from 'zod';

/**
 * A topology as data: its data centers and, in each, the processes that run
 * and the addresses they bind. Every process has its own 127.x.y.z address;
 * only the load balancer's is "public". Presets are functions from a few
 * options to one of these, never code paths of their own.
 */
const address = z.object({
  host: z.string().regex(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/),
  port: z.number().int().min(1).max(65535),
});

const process = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('web'),
    name: z.string(),
    listen: address,
    /** Its private /metrics listener (default: the same host, port 9464). */
    metrics: address.optional(),
    db: z.enum(['pglite', 'postgres']),
  }),
  z.object({ kind: z.literal('postgres'), name: z.string(), listen: address }),
  z.object({ kind: z.literal('etcd'), name: z.string(), client: address, peer: address }),
  z.object({ kind: z.literal('patroni'), name: z.string(), postgres: address, rest: address }),
  z.object({
    kind: z.literal('loadBalancer'),
    name: z.string(),
    /** The one public endpoint. */
    listen: address,
    /** Stats page and Prometheus exporter, private. */
    stats: address,
  }),
  z.object({ kind: z.literal('prometheus'), name: z.string(), listen: address }),
  /** The machine's own metrics: CPU, memory, disk I/O, network. */
  z.object({ kind: z.literal('hostExporter'), name: z.string(), listen: address }),
  /** Prometheus metrics of one PostgreSQL server (the process named by `server`). */
  z.object({ kind: z.literal('postgresExporter'), name: z.string(), listen: address, server: z.string() }),
  /** The project's own page: live topology, charts, fault buttons. */
  z.object({ kind: z.literal('dashboard'), name: z.string(), listen: address }),
  /**
   * A Redis server. `tier`: `durable` (sessions, rate limits; append-only file,
   * no eviction) or `cache` (no persistence, evicts under maxmemory).
   * `replicaOf` names the server it starts as a replica of; Sentinel moves that later.
   */
  z.object({
    kind: z.literal('redis'),
    name: z.string(),
    listen: address,
    tier: z.enum(['durable', 'cache']),
    replicaOf: z.string().optional(),
  }),
  /** A Redis Sentinel: watches every Redis master of the topology and promotes a replica when one fails. */
  z.object({ kind: z.literal('redisSentinel'), name: z.string(), listen: address }),
  /** Prometheus metrics of one Redis server (the process named by `server`). */
  z.object({ kind: z.literal('redisExporter'), name: z.string(), listen: address, server: z.string() }),
  /**
   * Keeps every other process of the topology running (restarts with
   * Kubernetes' crash-loop back-off), scales and deploys the web tier through
   * the balancer's runtime API, and runs the autoscaler. `listen`: its private
   * control API and /metrics.
   */
  z.object({ kind: z.literal('supervisor'), name: z.string(), listen: address }),
  z.object({
    kind: z.literal('dbProxy'),
    name: z.string(),
    /** Routes to the Patroni leader. */
    primary: address,
    /** Round robin over streaming replicas. */
    replicas: address,
    stats: address,
  }),
]);

/**
 * Kubernetes HPA's rule on the web tier: desired = ceil(current × metric /
 * target), no change within `tolerance`, up at once, down only to the highest
 * recommendation of the last `stabilizationSeconds`, within [min, max].
 * The metric: requests in flight per web server, as the balancer counts them.
 */
export const autoscalePolicy = z.object({
  min: z.number().int().min(1).max(16),
  max: z.number().int().min(1).max(16),
  /** Requests in flight per web server the autoscaler aims for. */
  target: z.number().positive(),
  tolerance: z.number().min(0).max(1).default(0.1),
  stabilizationSeconds: z.number().min(0).max(3600).default(60),
  /** How often it decides (Kubernetes: 15 s). */
  periodSeconds: z.number().min(1).max(300).default(5),
  enabled: z.boolean().default(true),
});
export type AutoscalePolicy = z.infer<typeof autoscalePolicy>;

/** At most this many web servers (their addresses 127.<octet>.1.1–16, and the balancer's slots). */
export const maxWebServers = 16;

export const topologySchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,30}$/),
  preset: z.string(),
  options: z.object({
    /** Patroni synchronous mode: a commit is acknowledged once a replica has it. */
    synchronous: z.boolean(),
    /** Patroni leader-key TTL in seconds: the failover detection time. */
    patroniTtl: z.number().int().min(5).max(60),
    /** The cache Redis's memory bound and eviction policy. */
    cacheMaxMemory: z.string().default('64mb'),
    cacheEviction: z.enum(['allkeys-lru', 'allkeys-lfu', 'volatile-lru', 'volatile-lfu']).default('allkeys-lru'),
    /** The web tier's autoscaler (preset `stateless`); absent: the web-server count changes only by hand. */
    autoscale: autoscalePolicy.optional(),
  }),
  dataCenters: z.array(z.object({ name: z.string(), processes: z.array(process) })).min(1),
});

export type Topology = z.infer<typeof topologySchema>;
export type ProcessSpec = Topology['dataCenters'][number]['processes'][number];
export type ProcessKind = ProcessSpec['kind'];

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
}

export const presets = ['single', 'db', 'lb', 'cache', 'stateless'] as const;
export type PresetName = (typeof presets)[number];

/** 20–219, from the name, so that differently named topologies usually get different addresses. */
export function octetFor(name: string): number {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return 20 + (h % 200);
}

export function buildPreset(preset: PresetName, o: PresetOptions = {}): Topology {
  const name = o.name ?? preset;
  const octet = o.octet ?? octetFor(name);
  const ip = (tier: number, n: number) => `127.${octet}.${tier}.${n}`;
  // Tiers: .0 public edge, .1 web servers, .2 database, .3 coordination, .4 monitoring, .5 Redis.
  // `cache` is `lb` plus the Redis tier; `stateless` is `cache` plus the autoscaler.
  const clustered = preset === 'lb' || preset === 'cache' || preset === 'stateless';
  const withRedis = preset === 'cache' || preset === 'stateless';
  const webCount = clustered ? (o.webServers ?? 2) : 1;
  const db = preset === 'single' ? 'pglite' : 'postgres';
  const webPort = clustered ? 3000 : (o.port ?? 3000);
  if (webCount > maxWebServers) throw new Error(`at most ${maxWebServers} web servers`);
  const webs = Array.from({ length: webCount }, (_, i) =>
    clustered
      ? webServerSpec(octet, i + 1)
      : {
          kind: 'web' as const,
          name: 'web-1',
          listen: { host: ip(0, 1), port: webPort },
          metrics: { host: ip(0, 1), port: webMetricsPort },
          db: db as 'pglite' | 'postgres',
        },
  );
  const processes: ProcessSpec[] = [];
  if (preset === 'db') processes.push({ kind: 'postgres', name: 'postgres', listen: { host: ip(2, 1), port: 5432 } });
  if (clustered) {
    processes.push({
      kind: 'etcd',
      name: 'etcd',
      client: { host: ip(3, 1), port: 2379 },
      peer: { host: ip(3, 1), port: 2380 },
    });
    for (let i = 1; i <= 1 + (o.replicas ?? 2); i++) {
      processes.push({
        kind: 'patroni',
        name: `pg-${i}`,
        postgres: { host: ip(2, i), port: 5432 },
        rest: { host: ip(2, i), port: 8008 },
      });
    }
    processes.push({
      kind: 'dbProxy',
      name: 'db-proxy',
      primary: { host: ip(2, 100), port: 5000 },
      replicas: { host: ip(2, 100), port: 5001 },
      stats: { host: ip(2, 100), port: 7000 },
    });
  }
  if (withRedis) {
    // Two Redis roles, as Mastodon's scaling guide separates them, each a master and a replica.
    for (const [t, tier] of [
      [1, 'durable'],
      [2, 'cache'],
    ] as const) {
      processes.push({ kind: 'redis', name: `redis-${tier}-1`, listen: { host: ip(5, t * 10 + 1), port: 6379 }, tier });
      processes.push({
        kind: 'redis',
        name: `redis-${tier}-2`,
        listen: { host: ip(5, t * 10 + 2), port: 6379 },
        tier,
        replicaOf: `redis-${tier}-1`,
      });
    }
    for (let i = 1; i <= 3; i++) {
      processes.push({ kind: 'redisSentinel', name: `sentinel-${i}`, listen: { host: ip(5, 100 + i), port: 26379 } });
    }
  }
  processes.push(...webs);
  if (clustered) {
    processes.push({
      kind: 'loadBalancer',
      name: 'load-balancer',
      listen: { host: ip(0, 1), port: o.port ?? 8080 },
      stats: { host: ip(1, 100), port: 8404 },
    });
  }
  // One exporter per PostgreSQL server: Debian's 0.11 cannot serve several data sources at once.
  const servers = processes.filter((p) => p.kind === 'postgres' || p.kind === 'patroni');
  servers.forEach((s, i) => {
    processes.push({
      kind: 'postgresExporter',
      name: `${s.name}-exporter`,
      listen: { host: ip(4, 10 + i), port: 9187 },
      server: s.name,
    });
  });
  processes
    .filter((p) => p.kind === 'redis')
    .forEach((r, i) => {
      processes.push({
        kind: 'redisExporter',
        name: `${r.name}-exporter`,
        listen: { host: ip(4, 30 + i), port: 9121 },
        server: r.name,
      });
    });
  processes.push({ kind: 'hostExporter', name: 'host-exporter', listen: { host: ip(4, 5), port: 9100 } });
  processes.push({ kind: 'prometheus', name: 'prometheus', listen: { host: ip(4, 1), port: 9090 } });
  processes.push({ kind: 'dashboard', name: 'dashboard', listen: { host: ip(4, 2), port: 8090 } });
  if (o.supervise ?? true) {
    processes.push({ kind: 'supervisor', name: 'supervisor', listen: { host: ip(4, 3), port: 8091 } });
  }
  const autoscale =
    preset === 'stateless' ? { min: webCount, max: Math.max(webCount, 6), target: 2, ...o.autoscale } : undefined;
  return topologySchema.parse({
    name,
    preset,
    options: {
      synchronous: o.synchronous ?? true,
      patroniTtl: o.patroniTtl ?? 5,
      cacheMaxMemory: o.cacheMaxMemory ?? '64mb',
      cacheEviction: o.cacheEviction ?? 'allkeys-lru',
      autoscale,
    },
    dataCenters: [{ name: 'dc1', processes }],
  });
}

export const webMetricsPort = 9464;

type WebSpec = Extract<ProcessSpec, { kind: 'web' }>;

/** Web server `index` (1–16) of a clustered topology: web-<index> at 127.<octet>.1.<index>:3000. */
export function webServerSpec(octet: number, index: number): WebSpec {
  const host = `127.${octet}.1.${index}`;
  return {
    kind: 'web',
    name: `web-${index}`,
    listen: { host, port: 3000 },
    metrics: { host, port: webMetricsPort },
    db: 'postgres',
  };
}

/** The web servers a topology has now (scaling and deploys change the list). */
export const webServers = (t: Topology): WebSpec[] => allProcesses(t).filter((p): p is WebSpec => p.kind === 'web');

/** A web server's slot: the last number of its name (web-3 → 3). */
export const webIndex = (w: WebSpec): number => Number(w.name.slice(w.name.lastIndexOf('-') + 1));

/** The topology's load balancer, which it must have. */
export function balancerOf(t: Topology): Extract<ProcessSpec, { kind: 'loadBalancer' }> {
  const lb = allProcesses(t).find((p) => p.kind === 'loadBalancer');
  if (lb?.kind !== 'loadBalancer') throw new Error('this topology has no load balancer');
  return lb;
}

/** The second octet of a topology's addresses. */
export const octetOf = (t: Topology): number => Number(balancerOf(t).listen.host.split('.')[1]);

/** Where a web server serves /metrics. */
export function webMetrics(spec: Extract<ProcessSpec, { kind: 'web' }>): { host: string; port: number } {
  return spec.metrics ?? { host: spec.listen.host, port: webMetricsPort };
}

export function allProcesses(t: Topology): ProcessSpec[] {
  return t.dataCenters.flatMap((dc) => dc.processes);
}

/** The URL users reach: the load balancer when there is one, else the web server. */
export function publicUrl(t: Topology): string {
  const all = allProcesses(t);
  const lb = all.find((p) => p.kind === 'loadBalancer');
  if (lb) return `http://${lb.listen.host}:${lb.listen.port}`;
  const web = all.find((p) => p.kind === 'web');
  if (web?.kind !== 'web') throw new Error('a topology needs a web server');
  return `http://${web.listen.host}:${web.listen.port}`;
}

/** Every address a process binds. */
export function addressesOf(p: ProcessSpec): { host: string; port: number }[] {
  switch (p.kind) {
    case 'web':
      return [p.listen, webMetrics(p)];
    case 'postgres':
    case 'prometheus':
    case 'dashboard':
    case 'postgresExporter':
    case 'hostExporter':
    case 'redis':
    case 'redisSentinel':
    case 'redisExporter':
    case 'supervisor':
      return [p.listen];
    case 'loadBalancer':
      return [p.listen, p.stats];
    case 'etcd':
      return [p.client, p.peer];
    case 'patroni':
      return [p.postgres, p.rest];
    case 'dbProxy':
      return [p.primary, p.replicas, p.stats];
  }
}

/** The address to show for a process. */
export const addressOf = (p: ProcessSpec): string => {
  switch (p.kind) {
    case 'web':
    case 'postgres':
    case 'loadBalancer':
    case 'prometheus':
    case 'dashboard':
    case 'postgresExporter':
    case 'hostExporter':
    case 'redis':
    case 'redisSentinel':
    case 'redisExporter':
    case 'supervisor':
      return `${p.listen.host}:${p.listen.port}`;
    case 'etcd':
      return `${p.client.host}:${p.client.port}`;
    case 'patroni':
      return `${p.postgres.host}:${p.postgres.port}`;
    case 'dbProxy':
      return `${p.primary.host}:${p.primary.port},${p.replicas.port}`;
  }
};

/** Sentinel's name for the master of a Redis tier. */
export const redisMasterName = (tier: 'durable' | 'cache') => `scaleout-${tier}`;
