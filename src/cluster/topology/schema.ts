import { z } from 'zod';
import { processSpec } from '../components/registry.ts';
import { shardBalancerPolicy } from '../reshard/hot-shard.ts';

/**
 * A topology as data: a global scope and a list of data centers, each with
 * the processes that run there and the addresses they bind (from the address
 * plan). Every process has its own 127.x.y.z address; only the edge of a data
 * center is "public". Presets are functions from a few options to one of
 * these, never code paths of their own. The kinds of process, and each kind's
 * spec, come from the component registry.
 */

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

/** At most this many web servers per data center (their addresses, and the balancer's slots). */
export const maxWebServers = 16;
/** At most this many workers per data center (their addresses). */
export const maxWorkers = 16;

/** Lazy: the registry's components import this module's types and helpers, so the union is read at parse time. */
const anyProcess = z.lazy(() => processSpec);

const dataCenterName = z.string().regex(/^[a-z][a-z0-9-]{0,15}$/);

export const topologySchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,30}$/),
    preset: z.string(),
    /** The second octet of every address (127.<octet>.x.y): the address plan's own. */
    octet: z.number().int().min(1).max(254),
    options: z.object({
      /** Patroni synchronous mode: a commit is acknowledged once a replica has it. */
      synchronous: z.boolean(),
      /** wal_level logical on every Patroni cluster (sharded: logical shards move by logical replication). */
      logicalReplication: z.boolean().default(false),
      /** Patroni leader-key TTL in seconds: the failover detection time. */
      patroniTtl: z.number().int().min(5).max(60),
      /** The cache Redis's memory bound and eviction policy. */
      cacheMaxMemory: z.string().default('64mb'),
      cacheEviction: z.enum(['allkeys-lru', 'allkeys-lfu', 'volatile-lru', 'volatile-lfu']).default('allkeys-lru'),
      /**
       * Connections one client address may hold open at the balancer at once
       * (a stick table counts them): enough for a load generator, too few for one
       * address to fill the balancer's 4096 with slow requests.
       */
      maxConnectionsPerClient: z.number().int().min(1).max(4096).default(1024),
      /**
       * Admission control at the balancer: requests one web server serves at
       * once (HAProxy's `maxconn`), and how long the others may wait in the
       * balancer's queue before a 503 with Retry-After.
       *
       * `queueDepthPerServer` (0: off, the default) adds the door: a read that
       * finds the queue this deep per usable server is answered the same 503 at
       * once (a write at a third of it, a sign-up, log-in or upload at a sixth;
       * a third of those while the queue stands). With it, a longer queue
       * timeout (500 ms) lets a stall below capacity be waited out. Measured
       * against the timeout alone in docs/benchmarks.md §20g: it served overload
       * slower on this machine, so it is not the default.
       *
       * The timeout is 25 ms (it was 50): under overload the queue stands full,
       * so a served request has waited about the whole timeout in it; 25 ms
       * halved the served p50 and cut the served p99 from 251–254 ms to 136–161
       * ms, with no more 503s below capacity in the runs of §20k.
       */
      maxRequestsPerServer: z.number().int().min(1).max(1000).default(5),
      queueDepthPerServer: z.number().int().min(0).max(10_000).default(0),
      queueTimeoutMs: z.number().int().min(10).max(30_000).default(25),
      /**
       * Bounded memory: V8's old-space limit of a web server and of a worker
       * (MB; `--max-old-space-size`), and the young generation's semi-space
       * (`--max-semi-space-size`). Without them V8 sizes its heap to the machine.
       */
      webHeapMb: z.number().int().min(32).max(8192).default(96),
      workerHeapMb: z.number().int().min(32).max(8192).default(96),
      semiSpaceMb: z.number().int().min(1).max(64).default(8),
      /** The web tier's autoscaler (preset `stateless`); absent: the web-server count changes only by hand. */
      autoscale: autoscalePolicy.optional(),
      /**
       * Where the jobs run: in each web server, on its in-process queue
       * (`web`), or in worker processes on BullMQ in the durable Redis
       * (`workers`, preset `queue`: web servers only enqueue).
       */
      jobs: z.enum(['web', 'workers']).default('web'),
      /** Jobs one worker runs at once (photo variants; each holds one libvips thread). */
      workerConcurrency: z.number().int().min(1).max(16).default(1),
      /**
       * The workers' CPU priority (nice): on a machine they share with the web
       * servers, image work takes the CPU the requests leave, not the other way
       * round (Kubernetes would give them a lower CPU share).
       */
      workerNice: z.number().int().min(0).max(19).default(10),
      /**
       * The worker tier's autoscaler: the same rule, stabilization and bounds
       * as the web tier's, on queue depth (jobs ready or running per worker
       * slot, `target` of them per slot).
       */
      workerAutoscale: autoscalePolicy.optional(),
      /**
       * The shard balancer (preset sharded): a logical shard hot for a while is
       * moved to the least-loaded cluster on its own. Absent: off.
       */
      shardBalancer: shardBalancerPolicy.optional(),
    }),
    /** Processes of no data center: Prometheus, the dashboard, the supervisor, the host's exporter (later DNS). */
    global: z.object({ processes: z.array(anyProcess) }).default({ processes: [] }),
    dataCenters: z.array(z.object({ name: dataCenterName, processes: z.array(anyProcess) })).min(1),
  })
  // A name is a process's run directory, log, state entry and balancer entry: one per topology, whatever its scope.
  .superRefine((t, ctx) => {
    const names = [...t.dataCenters.flatMap((d) => d.processes), ...t.global.processes].map((p) => p.name);
    const twice = [...new Set(names.filter((n, i) => names.indexOf(n) !== i))];
    if (twice.length > 0)
      ctx.addIssue({ code: 'custom', message: `process names must be unique in a topology: ${twice.join(', ')}` });
  });

export type Topology = z.infer<typeof topologySchema>;
export type ProcessSpec = z.infer<typeof processSpec>;
export type ProcessKind = ProcessSpec['kind'];
/** The spec of one kind of process. */
export type SpecOf<K extends ProcessKind> = Extract<ProcessSpec, { kind: K }>;
