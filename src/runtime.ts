import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createActivityRepository } from './app/activity/repository.ts';
import { createActivityService } from './app/activity/service.ts';
import { createFeedService } from './app/feed/service.ts';
import { createTimelines } from './app/feed/timelines.ts';
import { createPeopleService } from './app/people/service.ts';
import { createPhotoRepository } from './app/photos/repository.ts';
import { createPhotoService } from './app/photos/service.ts';
import type { Services } from './app/routes/context.ts';
import { createSocialRepository } from './app/social/repository.ts';
import { createSocialService } from './app/social/service.ts';
import { createThrottle } from './app/throttle.ts';
import { createUserRepository } from './app/users/repository.ts';
import { createUserService } from './app/users/service.ts';
import type { Config } from './config.ts';
import { createFilesystemBlobStore } from './platform/blobs/filesystem.ts';
import { createMemoryCache } from './platform/cache/memory.ts';
import { createNoCache } from './platform/cache/none.ts';
import { withSharedInvalidation } from './platform/cache/shared-invalidation.ts';
import { lockDataDir } from './platform/data-dir-lock.ts';
import { openPgliteDb } from './platform/db/pglite.ts';
import type { QueryObserver } from './platform/db/postgres.ts';
import { createVarnishEdge } from './platform/edge/varnish.ts';
import { createDatabaseIdempotencyStore } from './platform/idempotency/database.ts';
import { probeImageHeader } from './platform/images/header.ts';
import { countQuery, currentRequestId } from './platform/observability/context.ts';
import { createLogger, type Logger } from './platform/observability/logger.ts';
import { createMetrics, type Metrics } from './platform/observability/metrics.ts';
import { createMemoryQueue } from './platform/queue/memory.ts';
import { createDatabaseRateLimiter } from './platform/rate-limits/database.ts';
import { dataDirSecret } from './platform/secret.ts';
import { withSessionCache } from './platform/sessions/cached.ts';
import { createDatabaseSessionStore } from './platform/sessions/database.ts';
import { createMemorySessionStore } from './platform/sessions/memory.ts';
import { createMemoryTimelineStore } from './platform/timelines/memory.ts';
import { codeVersion } from './platform/version.ts';
import type { Db } from './ports/db.ts';
import { type Edge, noEdge } from './ports/edge.ts';
import type { IdempotencyStore } from './ports/idempotency.ts';
import type { ImageProcessor } from './ports/images.ts';
import type { JobQueue } from './ports/queue.ts';
import type { SessionStore } from './ports/sessions.ts';
import { delayBounds } from './server/admission.ts';
import { createDrain, type Drain, defaultDrain } from './server/drain.ts';
import { buildMetricsServer, listenUrl } from './server/metrics.ts';
import { startJobHandlers, startSweeper } from './worker/handlers.ts';

/** Every query feeds the duration histogram; slow ones are logged with the request that ran them. */
function queryObserver(config: Config, logger: Logger, metrics: Metrics): QueryObserver {
  const log = logger.child({ component: 'db' });
  return (target, ms, sql) => {
    countQuery();
    metrics.observeQuery(target, ms / 1000);
    if (ms >= config.slowQueryMs)
      log.warn({ reqId: currentRequestId(), target, ms: Math.round(ms), sql: sql.slice(0, 300) }, 'slow query');
  };
}

async function openDb(config: Config, logger: Logger, metrics: Metrics): Promise<Db> {
  const observe = queryObserver(config, logger, metrics);
  if (config.db === 'pglite') return openPgliteDb(path.join(config.dataDir, 'pg'), observe);
  // Loaded only for a PostgreSQL server, so the single server starts without pg.
  const { openPostgresDb } = await import('./platform/db/postgres.ts');
  const { patroniReplicas, staticReplicas } = await import('./platform/db/replicas.ts');
  if (config.shardClusters?.length) return openSharded(config, logger, metrics, observe);
  const replicas = config.patroniUrls?.length
    ? patroniReplicas(config.patroniUrls)
    : config.replicaUrls?.length
      ? staticReplicas(config.replicaUrls)
      : undefined;
  const db = await openPostgresDb({
    url: config.databaseUrl as string,
    replicas,
    poolSize: config.dbPoolSize,
    maxReplicaLagBytes: config.maxReplicaLagBytes,
    observe,
    logger: logger.child({ component: 'db' }),
  });
  metrics.watchDbPool(db.poolStats);
  metrics.watchReplicas(db.replicaStates);
  return db;
}

/** Runs `task` every `ms` (with ±25 % jitter, so processes do not run it together), one run at a time. */
function every(ms: number, task: () => Promise<void>): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(
      async () => {
        await task().catch(() => {});
        schedule();
      },
      ms * (0.75 + Math.random() * 0.5),
    );
    timer.unref();
  };
  schedule();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** The sharded store: every shard cluster of SCALEOUT_SHARD_CLUSTERS, placed by the shard map in etcd. */
async function openSharded(
  config: Config,
  logger: Logger,
  metrics: Metrics,
  observe: ReturnType<typeof queryObserver>,
): Promise<Db> {
  const { openShardedDb } = await import('./platform/db/sharded.ts');
  const { etcdShardClusters, etcdShardMap } = await import('./platform/db/etcd-map.ts');
  const { patroniReplicas } = await import('./platform/db/replicas.ts');
  if (!config.shardMapEtcd || !config.shardMapUser || !config.shardMapPassword) {
    throw new Error('a sharded store needs SCALEOUT_SHARD_MAP_ETCD, _USER and _PASSWORD');
  }
  const clusters = (config.shardClusters ?? []).map((entry) => {
    const [name, url, rest] = entry.split('|');
    if (!name || !url) throw new Error(`not a shard cluster (name|url|patroni+patroni): ${entry}`);
    const nodes = (rest ?? '').split('+').filter(Boolean);
    return { name, url, replicas: nodes.length > 0 ? patroniReplicas(nodes) : undefined };
  });
  const log = logger.child({ component: 'db' });
  const target = {
    endpoint: config.shardMapEtcd,
    user: config.shardMapUser,
    password: config.shardMapPassword,
    key: config.shardMapKey,
  };
  const map = await etcdShardMap(target, { logger: log });
  const [first] = clusters;
  if (!first) throw new Error('SCALEOUT_SHARD_CLUSTERS names no cluster');
  const db = await openShardedDb({
    clusters,
    // A cluster added while this process runs: its address from etcd, with the same credentials.
    discover: etcdShardClusters(target, first.url),
    map,
    poolSize: config.dbPoolSize,
    maxReplicaLagBytes: config.maxReplicaLagBytes,
    observe,
    logger: log,
  });
  metrics.watchShardMap(() => map.current().version, db.shardQueries);
  return db;
}

/** BullMQ on the durable Redis, loaded only for a topology that splits web servers and workers. */
async function openBullmqQueue(config: Config, redis: { connectDurable(): import('ioredis').Redis } | undefined) {
  if (!redis) throw new Error('the BullMQ queue needs the Redis tiers (SCALEOUT_REDIS_SENTINELS)');
  const { createBullmqQueue, siteQueuePrefix } = await import('./platform/queue/bullmq.ts');
  return createBullmqQueue({
    connect: redis.connectDurable,
    prefix: siteQueuePrefix,
    attempts: config.jobAttempts,
    backoffMs: config.jobBackoffMs,
    lockMs: config.jobLockMs,
    stalledCheckMs: config.jobStalledCheckMs,
  });
}

/**
 * Images: an upload's dimensions from its header (plain JavaScript, every
 * role), the variants with sharp, loaded on the first job: a web server that
 * only enqueues never loads libvips.
 */
function imageProcessor(config: Config): ImageProcessor {
  let sharp: Promise<ImageProcessor> | undefined;
  const load = () => {
    sharp ??= import('./platform/images/sharp.ts').then((m) =>
      m.createSharpImageProcessor(config.uploadMaxMegapixels * 1e6, config.imageDecodeTimeoutSeconds),
    );
    return sharp;
  };
  return { probe: probeImageHeader, variants: async (data) => (await load()).variants(data) };
}

export interface Runtime {
  server: FastifyInstance;
  logger: Logger;
  /** Listens on the configured host and port (and the metrics listener on its own); resolves to the site's URL. */
  listen(): Promise<string>;
  /** Where /metrics is served, once listening. */
  metricsUrl(): string;
  /** Graceful shutdown's first half: fail /readyz until the balancer has let go (then `close`). */
  drain: Drain;
  close(): Promise<void>;
}

/**
 * What a process of the site is built from, once, from config: the adapters,
 * the services over them, the readiness checks, and the closers that release
 * them in reverse order. A role then starts what its process needs.
 */
export interface Container {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  db: Db;
  queue: JobQueue;
  sessions: SessionStore;
  /** Idempotency-Keys: in the durable Redis where there is one, else in the database. */
  idempotency: IdempotencyStore;
  services: Services;
  /** The CDN edges (or none): where image URLs point, and purges. */
  edge: Edge;
  readiness: { name: string; check: () => Promise<void> }[];
  /** Run in reverse order by `close`. */
  closers: (() => Promise<void>)[];
  close(): Promise<void>;
}

/**
 * The roles of a process: `all` (the single server), `web` (the site; jobs
 * are only enqueued) and `worker` (the job handlers, with health on its port).
 */
export const roles = {
  all: { site: true, jobs: true },
  web: { site: true, jobs: false },
  worker: { site: false, jobs: true },
} as const satisfies Record<Config['role'], { site: boolean; jobs: boolean }>;

/** The composition root's first half: config → adapters → services. Only this file picks adapters. */
export async function createContainer(config: Config, logger: Logger): Promise<Container> {
  // An embedded database allows one process per data dir; a server database does not need the lock.
  const closers: (() => Promise<void>)[] = config.db === 'pglite' ? [await lockDataDir(config.dataDir)] : [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch((err) => logger.error({ err }, 'shutdown step failed'));
  };
  try {
    const metrics = createMetrics();
    const db = await openDb(config, logger, metrics);
    closers.push(() => db.close());
    const blobs = createFilesystemBlobStore(config.blobDir ?? path.join(config.dataDir, 'blobs'), {
      fsync: config.blobFsync,
    });
    // Loaded only for a topology with Redis, so the single server starts without ioredis.
    const redis = config.redisSentinels?.length
      ? (await import('./platform/redis/tiers.ts')).connectRedisTiers({
          sentinels: config.redisSentinels,
          password: config.redisPassword,
          sentinelPassword: config.redisSentinelPassword,
          durableName: config.redisDurableName,
          cacheName: config.redisCacheName,
          cacheMaxEntries: config.cacheMaxEntries,
          cacheMaxBytes: config.cacheMaxMb * 1024 * 1024 || undefined,
          cacheTtlSeconds: config.cacheTtlSeconds,
          sessionTtlSeconds: config.sessionTtlSeconds,
          timelines: { maxEntries: config.feedMaxEntries, ttlSeconds: config.feedActiveDays * 86_400 },
          // A worker serves no reads: no L1, so no share of every other process's invalidations.
          localCache: roles[config.role].site,
          logger,
          onMasterChange: (tier) => metrics.redisMasterChanged(tier),
        })
      : undefined;
    if (redis) closers.push(redis.close);
    const local = redis
      ? undefined
      : createMemoryCache({
          policy: config.cachePolicy,
          maxEntries: config.cacheMaxEntries,
          maxBytes: config.cacheMaxMb * 1024 * 1024 || undefined,
          defaultTtlSeconds: config.cacheTtlSeconds,
        });
    // Web servers sharing a PostgreSQL server and no Redis: each one's deletes reach the others by NOTIFY.
    // With Redis in each of several data centers (`database`): each one's deletes reach the others' cache Redis.
    const invalidations =
      config.db === 'postgres' &&
      ((local && config.cacheInvalidation === 'auto') || (redis && config.cacheInvalidation === 'database'))
        ? await (await import('./platform/invalidations/postgres.ts')).createPostgresInvalidations({
            url: config.databaseUrl as string,
            logger: logger.child({ component: 'cache-invalidation' }),
            onPublish: (ms) => metrics.cacheInvalidationSent(ms),
          })
        : undefined;
    if (invalidations) closers.push(() => invalidations.close());
    const own = redis ? redis.cache : local;
    const cache = own && invalidations ? withSharedInvalidation(own, invalidations) : own;
    if (!cache) throw new Error('no cache');
    /**
     * The shared-invalidation rule, in one place: a value that one process's
     * write makes stale may be cached only where that write's delete reaches
     * every process that caches it: one process (the embedded database), the
     * cache Redis's channel, or PostgreSQL's NOTIFY.
     */
    const invalidationReachesAll = redis !== undefined || invalidations !== undefined || config.db === 'pglite';
    // Sessions and Idempotency-Keys in PostgreSQL beside Redis (`durableState: database`): several data centers.
    const durableInRedis = redis && config.durableState === 'auto' ? redis : undefined;
    const store = durableInRedis
      ? durableInRedis.sessions
      : config.sessionStore === 'database'
        ? createDatabaseSessionStore(db, config.sessionTtlSeconds)
        : createMemorySessionStore(config.sessionTtlSeconds);
    // A session lives in the store; a web server remembers it for 5 s where a log-out reaches every copy.
    const sessions =
      invalidationReachesAll && (durableInRedis || config.sessionStore === 'database')
        ? withSessionCache(store, cache, 5)
        : store;
    // "Liked by me" is the viewer's own write: cached only where a like through one server reaches every copy.
    const viewerCache = invalidationReachesAll ? cache : createNoCache();
    // Split into web servers and workers, with Redis: the jobs wait in BullMQ on the durable tier.
    const queue: JobQueue =
      config.queue === 'bullmq' || (config.queue === 'auto' && redis && config.role !== 'all')
        ? await openBullmqQueue(config, redis)
        : createMemoryQueue({ attempts: config.jobAttempts, backoffMs: config.jobBackoffMs });
    closers.push(() => queue.close());
    const images = imageProcessor(config);
    metrics.watchCache(cache);
    metrics.watchQueue(queue);

    // The CDN edges, in a topology that has them (cdn): image URLs point there while they answer.
    const edge =
      config.edgeUrls?.length && config.originUrl && config.edgePurgeToken
        ? createVarnishEdge({
            edges: config.edgeUrls,
            origin: config.originUrl,
            purgeToken: config.edgePurgeToken,
            logger,
          })
        : noEdge;
    closers.push(() => edge.close());
    const users = createUserRepository(db);
    const photoRepo = createPhotoRepository(db);
    const socialRepo = createSocialRepository(db, {
      onSyncError: (err, edge) =>
        logger.warn({ err: (err as Error).message, edge }, "an edge's copy on the other shard waits in the outbox"),
    });
    // Sharded: what a crash or an unreachable shard left in the edge outbox is finished every few seconds.
    if (db.each().length > 1) {
      const settler = every(5000, async () => {
        const n = await socialRepo.settle();
        if (n > 0) logger.info({ edges: n }, 'edge outbox: copies settled on their shards');
      });
      closers.push(async () => settler.stop());
    }
    const throttle = createThrottle(redis ? redis.rateLimiter : createDatabaseRateLimiter(db), {
      windowMs: config.rateLimitWindowSeconds * 1000,
      loginsPerClient: config.loginRateLimit,
      signupsPerClient: config.signupRateLimit,
      accountFailuresBeforeBackoff: config.accountLoginFailures,
      uploadsPerUser: config.uploadRateLimit,
    });
    // Precomputed feeds where every web server sees every push: in Redis, or in the one embedded process.
    const timelineStore =
      config.feedTimelines === 'off'
        ? undefined
        : redis
          ? redis.timelines
          : config.db === 'pglite'
            ? createMemoryTimelineStore({
                maxEntries: config.feedMaxEntries,
                maxTimelines: config.feedMaxTimelines,
                ttlSeconds: config.feedActiveDays * 86_400,
              })
            : undefined;
    const timelines =
      timelineStore &&
      createTimelines({
        store: timelineStore,
        photos: photoRepo,
        social: socialRepo,
        cache,
        metrics: metrics.feed,
        settings: { maxEntries: config.feedMaxEntries, fanoutMaxFollowers: config.feedFanoutMaxFollowers },
      });
    const services: Services = {
      users: createUserService({
        users,
        sessions,
        cache,
        metrics: metrics.business,
        throttle,
      }),
      photos: createPhotoService({
        photos: photoRepo,
        blobs,
        queue,
        images,
        cache,
        metrics: metrics.business,
        throttle,
        limits: {
          maxBytes: config.uploadMaxBytes,
          maxPixels: config.uploadMaxMegapixels * 1e6,
          maxQueuedPerUser: config.uploadMaxQueued,
        },
        timelines,
        viewerCache,
        edge,
        onEnqueueFailed: (name, err) =>
          logger.warn({ err, job: name }, 'job not enqueued (queue unavailable): the sweeper enqueues it again'),
      }),
      social: createSocialService({
        social: socialRepo,
        users,
        photos: photoRepo,
        cache,
        metrics: metrics.business,
        timelines,
      }),
      feed: createFeedService({ photos: photoRepo, users, cache, viewerCache, metrics: metrics.feed, timelines }),
      activity: createActivityService({ activity: createActivityRepository(db) }),
      people: createPeopleService({ users, social: socialRepo, cache }),
    };
    metrics.watchKpis(() => services.activity.kpis());

    return {
      config,
      logger,
      metrics,
      db,
      queue,
      sessions,
      idempotency: durableInRedis ? durableInRedis.idempotency : createDatabaseIdempotencyStore(db),
      services,
      edge,
      readiness: [
        { name: 'db', check: () => db.ping() },
        { name: 'blobs', check: () => blobs.ping() },
      ],
      closers,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * A process of the site in its role: the container, then the job handlers
 * (roles `all` and `worker`), the site (`all` and `web`; a worker serves only
 * /healthz and /readyz on its port) and the private metrics listener.
 */
export async function createRuntime(config: Config, opts: { logger?: Logger } = {}): Promise<Runtime> {
  const logger = (opts.logger ?? createLogger(config.logLevel)).child({ role: config.role });
  const role = roles[config.role];
  // The HTTP layer loads while the database opens (PGlite's start is mostly WebAssembly compile and file reads).
  const site = role.site ? import('./server/app.ts') : undefined;
  const c = await createContainer(config, logger);
  try {
    if (role.jobs !== role.site && !c.queue.shared) {
      throw new Error(
        `role ${config.role} needs a job queue that web servers and workers share; this one is in-process (role all runs both)`,
      );
    }
    if (role.jobs) {
      startJobHandlers({
        queue: c.queue,
        photos: c.services.photos,
        metrics: c.metrics.business,
        logger,
        concurrency: config.workerConcurrency,
      });
      if (c.queue.shared) {
        // Other workers hold jobs now: only what has been processing too long is enqueued again.
        const sweeper = startSweeper({
          photos: c.services.photos,
          logger,
          afterSeconds: config.sweepAfterSeconds,
          everySeconds: config.sweepEverySeconds,
        });
        c.closers.push(async () => sweeper.stop());
      } else {
        const resumed = await c.services.photos.resumeProcessing();
        if (resumed > 0) logger.info({ photos: resumed }, 're-queued photos left processing by the last run');
      }
    }
    const drain = createDrain({
      ...defaultDrain,
      balancerChecks: config.drainChecks,
      maxWaitMs: config.drainMaxSeconds * 1000,
    });
    const server = site
      ? await (await site).buildServer({
          services: c.services,
          sessions: c.sessions,
          consistency: c.db.consistency,
          logger,
          metrics: c.metrics,
          trustProxy: config.trustProxy,
          secureCookies: config.secureCookies,
          secret: config.secret ?? (await dataDirSecret(config.dataDir)),
          allowedHosts: config.allowedHosts,
          bodyTimeoutMs: config.bodyTimeoutMs,
          idempotency: c.idempotency,
          idempotencyTtlSeconds: config.idempotencyTtlSeconds,
          idempotencyLeaseMs: config.idempotencyLeaseSeconds * 1000,
          admission: {
            shedDelayMs: delayBounds(config.shedEventLoopDelayMs || Number.POSITIVE_INFINITY),
          },
          settings: {
            uploadMaxBytes: config.uploadMaxBytes,
            publicUrl: config.publicUrl,
            media: c.edge.origin()
              ? { base: () => c.edge.mediaBase(), origin: c.edge.origin(), hosts: c.edge.mediaHosts() }
              : undefined,
          },
          version: codeVersion(),
          drain,
          readiness: c.readiness,
        })
      : await (await import('./server/health.ts')).buildHealthServer({
          version: codeVersion(),
          drain,
          readiness: c.readiness,
        });
    // The server closes first, so in-flight requests finish before their adapters go.
    c.closers.push(() => server.close());
    const metricsServer = await buildMetricsServer(c.metrics);
    c.closers.push(() => metricsServer.close());
    return {
      server,
      logger,
      async listen() {
        const url = await server.listen({ host: config.host, port: config.port });
        const metricsUrl = await metricsServer.listen({ host: config.metricsHost, port: config.metricsPort });
        logger.info({ metrics: `${metricsUrl}/metrics` }, 'metrics listener');
        return url;
      },
      metricsUrl: () => listenUrl(metricsServer),
      drain,
      close: c.close,
    };
  } catch (err) {
    await c.close();
    throw err;
  }
}

/**
 * The accounts of a site's database, for an operator's commands (`scaleout
 * admin`). An embedded database is opened only while no server runs on it.
 */
export async function openAccounts(config: Config) {
  const logger = createLogger('silent');
  const unlock = config.db === 'pglite' ? await lockDataDir(config.dataDir) : async () => {};
  try {
    const db = await openDb(config, logger, createMetrics());
    const users = createUserRepository(db);
    return {
      async setRole(username: string, role: 'member' | 'admin'): Promise<boolean> {
        return users.setRole(username, role);
      },
      admins: () => users.admins(),
      async close() {
        await db.close();
        await unlock();
      },
    };
  } catch (err) {
    await unlock();
    throw err;
  }
}
