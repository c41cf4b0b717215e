import client from 'prom-client';
import { type Cache, keyClass } from '../../ports/cache.ts';
import type { BusinessMetrics, FeedMetrics } from '../../ports/metrics.ts';
import type { JobQueue } from '../../ports/queue.ts';

export interface Metrics {
  registry: client.Registry;
  business: BusinessMetrics;
  feed: FeedMetrics;
  /** A Redis tier's client found its master at a new address (a Sentinel failover), as this web server saw it. */
  redisMasterChanged(tier: string): void;
  /** A cache invalidation sent through the database: ms until every other server confirmed it, or null (not in time, or failed). */
  cacheInvalidationSent(ms: number | null): void;
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  /** A request answered 503 before any work: its class was over its bound (the event loop's delay, or in flight). */
  requestShed(cls: string, reason: string): void;
  watchCache(cache: Cache): void;
  /** Database queries one request made, by route. */
  observeQueriesPerRequest(route: string, queries: number): void;
  watchQueue(queue: JobQueue): void;
  observeQuery(target: string, seconds: number): void;
  watchKpis(kpis: () => Promise<{ dailyActiveUsers: number; signups: number; uploads: number; likes: number }>): void;
  watchDbPool(stats: () => { total: number; idle: number; waiting: number }): void;
  watchReplicas(states: () => { name: string; healthy: boolean; lagBytes: number | null }[]): void;
  /** The version of the shard map this process routes by, and the statements it ran per logical shard (sharded). */
  watchShardMap(version: () => number, queries: () => number[]): void;
}

/**
 * The Prometheus registry of one process: per-route rate, errors and duration,
 * the business counters, cache and queue gauges, and the default process
 * metrics (CPU, memory, event-loop lag).
 */
export function createMetrics(labels: Record<string, string> = {}): Metrics {
  const registry = new client.Registry();
  registry.setDefaultLabels(labels);
  client.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });

  const queriesPerRequest = new client.Histogram({
    name: 'scaleout_db_queries_per_request',
    help: 'Database queries one request made, by route',
    labelNames: ['route'],
    buckets: [0, 1, 2, 3, 5, 8, 13, 21],
    registers: [registry],
  });
  const requests = new client.Counter({
    name: 'http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const errors = new client.Counter({
    name: 'http_request_errors_total',
    help: 'HTTP responses with a 5xx status',
    labelNames: ['method', 'route'],
    registers: [registry],
  });
  const duration = new client.Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const shed = new client.Counter({
    name: 'scaleout_requests_shed_total',
    help: 'Requests answered 503 with Retry-After before any work, by class (costly, write, read) and reason',
    labelNames: ['class', 'reason'],
    registers: [registry],
  });
  const counter = (name: string, help: string) => new client.Counter({ name, help, registers: [registry] });
  const signups = counter('scaleout_signups_total', 'Accounts created');
  const uploads = counter('scaleout_uploads_total', 'Photos uploaded');
  const likes = counter('scaleout_likes_total', 'Likes given');
  const jobSeconds = new client.Histogram({
    name: 'scaleout_job_duration_seconds',
    help: 'Job run time by job name and outcome',
    labelNames: ['job', 'outcome'],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });

  const timeToReady = new client.Histogram({
    name: 'scaleout_photo_time_to_ready_seconds',
    help: 'From an accepted upload to its photo being ready (variants made and fanned out)',
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  });
  const enqueueFailures = new client.Counter({
    name: 'scaleout_job_enqueue_failures_total',
    help: 'Jobs that could not be enqueued (the sweeper enqueues them again from the database)',
    labelNames: ['job'],
    registers: [registry],
  });

  const rebuilds = new client.Counter({
    name: 'scaleout_feed_timeline_rebuilds_total',
    help: 'Precomputed timelines rebuilt from the database because they were missing, by kind (home, author)',
    labelNames: ['kind'],
    registers: [registry],
  });
  const fanoutSeconds = new client.Histogram({
    name: 'scaleout_feed_fanout_lag_seconds',
    help: "Time from a photo's variants existing to the photo being in its followers' home feeds (it is marked ready after)",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const fanoutFollowers = new client.Histogram({
    name: 'scaleout_feed_fanout_followers',
    help: 'Home feeds one ready photo was pushed to (0 for an author merged at read time)',
    buckets: [0, 1, 10, 100, 1000, 10_000, 100_000],
    registers: [registry],
  });
  const timelineFailures = new client.Counter({
    name: 'scaleout_feed_timeline_failures_total',
    help: 'Timeline calls that failed (the feed was read from the database instead, or a push was skipped), by operation',
    labelNames: ['operation'],
    registers: [registry],
  });

  const invalidationSeconds = new client.Histogram({
    name: 'scaleout_cache_invalidation_seconds',
    help: 'A cache invalidation sent by NOTIFY: time until every other web server confirmed it dropped the keys',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2],
    registers: [registry],
  });
  const invalidationsLate = new client.Counter({
    name: 'scaleout_cache_invalidations_unconfirmed_total',
    help: 'Cache invalidations sent by NOTIFY that some web server did not confirm in time (or that could not be sent)',
    registers: [registry],
  });
  const masterChanges = new client.Counter({
    name: 'scaleout_redis_master_changes_total',
    help: "Sentinel failovers as this process saw them: its Redis client found the tier's master at a new address",
    labelNames: ['tier'],
    registers: [registry],
  });

  const queries = new client.Histogram({
    name: 'scaleout_db_query_duration_seconds',
    help: 'Database query time by target (primary, replica, embedded)',
    labelNames: ['target'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });

  return {
    registry,
    observeQuery: (target, seconds) => queries.observe({ target }, seconds),
    watchKpis(kpis) {
      // One count feeds all four gauges, and is kept for 15 s: Prometheus scrapes every 2 s, and a sharded
      // store counts on every logical shard (4 × 64 queries), which every scrape would otherwise repeat.
      let pending: ReturnType<typeof kpis> | undefined;
      const read = () => {
        pending ??= kpis().finally(() => {
          setTimeout(() => {
            pending = undefined;
          }, 15_000).unref();
        });
        return pending;
      };
      const gauge = (name: string, help: string, pick: (k: Awaited<ReturnType<typeof kpis>>) => number) =>
        new client.Gauge({
          name,
          help,
          registers: [registry],
          async collect() {
            try {
              this.set(pick(await read()));
            } catch {
              // the database is away; keep the last value
            }
          },
        });
      gauge(
        'scaleout_daily_active_users',
        'Users with an authenticated request today (UTC), exact',
        (k) => k.dailyActiveUsers,
      );
      gauge('scaleout_signups_today', 'Accounts created today (UTC)', (k) => k.signups);
      gauge('scaleout_uploads_today', 'Photos uploaded today (UTC)', (k) => k.uploads);
      gauge('scaleout_likes_today', 'Likes given today (UTC)', (k) => k.likes);
    },
    watchDbPool(stats) {
      new client.Gauge({
        name: 'scaleout_db_pool_connections',
        help: 'Primary pool connections by state',
        labelNames: ['state'],
        registers: [registry],
        collect() {
          const s = stats();
          this.set({ state: 'total' }, s.total);
          this.set({ state: 'idle' }, s.idle);
          this.set({ state: 'waiting' }, s.waiting);
        },
      });
    },
    watchShardMap(version, queries) {
      new client.Gauge({
        name: 'scaleout_shard_map_version',
        help: 'The version of the shard map this process routes queries by',
        registers: [registry],
        collect() {
          this.set(version());
        },
      });
      new client.Counter({
        name: 'scaleout_shard_queries_total',
        help: 'Statements this process ran on each logical shard',
        labelNames: ['shard'],
        registers: [registry],
        collect() {
          this.reset();
          queries().forEach((n, k) => {
            if (n > 0) this.inc({ shard: String(k) }, n);
          });
        },
      });
    },
    watchReplicas(states) {
      new client.Gauge({
        name: 'scaleout_replica_lag_bytes',
        help: 'How far each replica is behind the primary, as this web server last saw it',
        labelNames: ['replica'],
        registers: [registry],
        collect() {
          this.reset();
          for (const r of states()) if (r.lagBytes !== null) this.set({ replica: r.name }, r.lagBytes);
        },
      });
      new client.Gauge({
        name: 'scaleout_replica_serving_reads',
        help: '1 when the replica gets reads, 0 when it is down or lags too far',
        labelNames: ['replica'],
        registers: [registry],
        collect() {
          this.reset();
          for (const r of states()) this.set({ replica: r.name }, r.healthy ? 1 : 0);
        },
      });
    },
    business: {
      signup: () => signups.inc(),
      upload: () => uploads.inc(),
      like: () => likes.inc(),
      jobDone: (job, seconds, outcome) => jobSeconds.observe({ job, outcome }, seconds),
      photoReady: (seconds) => timeToReady.observe(seconds),
      enqueueFailed: (job) => enqueueFailures.inc({ job }),
    },
    redisMasterChanged: (tier) => masterChanges.inc({ tier }),
    cacheInvalidationSent: (ms) => (ms === null ? invalidationsLate.inc() : invalidationSeconds.observe(ms / 1000)),
    feed: {
      timelineRebuilt: (kind) => rebuilds.inc({ kind }),
      fannedOut(followers, seconds) {
        fanoutFollowers.observe(followers);
        fanoutSeconds.observe(seconds);
      },
      timelineFailed: (operation) => timelineFailures.inc({ operation }),
    },
    requestShed(cls, reason) {
      shed.inc({ class: cls, reason });
    },
    observeRequest(method, route, status, seconds) {
      requests.inc({ method, route, status: String(status) });
      duration.observe({ method, route }, seconds);
      if (status >= 500) errors.inc({ method, route });
    },
    watchCache(cache) {
      const read = (pick: 'hits' | 'misses' | 'size' | 'bytes') =>
        function (this: client.Gauge) {
          this.set(cache.stats()[pick] ?? 0);
        };
      new client.Gauge({
        name: 'scaleout_cache_hits',
        help: 'Cache hits since start',
        registers: [registry],
        collect: read('hits'),
      });
      new client.Gauge({
        name: 'scaleout_cache_misses',
        help: 'Cache misses since start',
        registers: [registry],
        collect: read('misses'),
      });
      // Counted in a plain map (a feed page makes ~40 lookups) and handed to the counter when scraped.
      const pending = new Map<string, number>();
      new client.Counter({
        name: 'scaleout_cache_lookups_total',
        help: 'Cache lookups by data class (the key prefix), result, and the level a hit came from (l1: the process, l2: the cache Redis)',
        labelNames: ['class', 'result', 'level'],
        registers: [registry],
        collect() {
          for (const [labels, n] of pending) {
            const [cls, result, level] = labels.split('|') as [string, string, string];
            this.inc({ class: cls, result, level }, n);
          }
          pending.clear();
        },
      });
      cache.onLookup((l) => {
        const labels = `${keyClass(l.key)}|${l.result}|${l.level ?? 'none'}`;
        pending.set(labels, (pending.get(labels) ?? 0) + 1);
      });
      new client.Gauge({
        name: 'scaleout_cache_entries',
        help: 'Entries in the cache',
        registers: [registry],
        collect: read('size'),
      });
      new client.Gauge({
        name: 'scaleout_cache_bytes',
        help: "What the in-process cache's entries hold, in bytes of their JSON (V8 holds about 3× that)",
        registers: [registry],
        collect: read('bytes'),
      });
    },
    observeQueriesPerRequest(route, n) {
      queriesPerRequest.observe({ route }, n);
    },
    watchQueue(queue) {
      // `shared`: every process of the site reports the same queue (take the max, not the sum).
      const shared = String(queue.shared);
      new client.Gauge({
        name: 'scaleout_queue_jobs',
        help: 'Jobs by state (shared="true": the queue every process of the site shares)',
        labelNames: ['state', 'shared'],
        registers: [registry],
        async collect() {
          const d = await queue.depth().catch(() => null);
          if (!d) return;
          for (const [state, n] of Object.entries(d)) this.set({ state, shared }, n);
        },
      });
    },
  };
}
