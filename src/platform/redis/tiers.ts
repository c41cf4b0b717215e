import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ClearableCache } from '../../ports/cache.ts';
import type { IdempotencyStore } from '../../ports/idempotency.ts';
import type { RateLimiter } from '../../ports/rate-limits.ts';
import type { SessionStore } from '../../ports/sessions.ts';
import type { TimelineStore } from '../../ports/timelines.ts';
import { createTwoLevelCache } from '../cache/two-level.ts';
import { createRedisIdempotencyStore } from '../idempotency/redis.ts';
import { createRedisRateLimiter } from '../rate-limits/redis.ts';
import { createRedisSessionStore } from '../sessions/redis.ts';
import { createRedisTimelineStore } from '../timelines/redis.ts';
import { cacheTierOptions, connectRedis, durableTierOptions, parseHostPorts, subscriberOptions } from './connect.ts';

export interface RedisTiers {
  cache: ClearableCache;
  sessions: SessionStore;
  rateLimiter: RateLimiter;
  /** Idempotency-Keys and the first answers, on the durable tier. */
  idempotency: IdempotencyStore;
  /** Precomputed feeds, in the cache tier (rebuilt from the database when lost). */
  timelines: TimelineStore;
  /** A new connection to the durable tier that waits out a failover (BullMQ's). */
  connectDurable(): Redis;
  close(): Promise<void>;
}

/**
 * The adapters on the two Redis tiers, found through the Sentinels: sessions
 * and rate limits on the durable one (it waits out a failover), the two-level
 * cache on the cache one (it fails fast). Loaded only when a topology has Redis.
 */
export function connectRedisTiers(opts: {
  sentinels: string[];
  password?: string;
  sentinelPassword?: string;
  durableName: string;
  cacheName: string;
  cacheMaxEntries: number;
  /** The L1's bound in bytes of JSON. */
  cacheMaxBytes?: number;
  cacheTtlSeconds: number;
  sessionTtlSeconds: number;
  timelines: { maxEntries: number; ttlSeconds: number };
  /**
   * An in-process L1 in front of the cache Redis, kept fresh by its
   * invalidation channel: for a process that serves reads. A worker has
   * none, so every write's invalidation is not its work too.
   */
  localCache?: boolean;
  logger: Logger;
  /** Called when a tier's client finds its master at another address than before: a Sentinel failover. */
  onMasterChange?: (tier: 'durable' | 'cache') => void;
}): RedisTiers {
  const sentinels = parseHostPorts(opts.sentinels);
  const auth = { password: opts.password, sentinelPassword: opts.sentinelPassword };
  const durable = connectRedis({ sentinels, name: opts.durableName, ...auth }, durableTierOptions);
  // Session writes and their WAITs on a connection of their own: a WAIT blocks its connection.
  const sessionWriter = connectRedis({ sentinels, name: opts.durableName, ...auth }, durableTierOptions);
  const cache = connectRedis({ sentinels, name: opts.cacheName, ...auth }, cacheTierOptions);
  for (const [tier, client] of [
    ['durable', durable],
    ['cache', cache],
  ] as const) {
    let master: string | undefined;
    client.on('ready', () => {
      const now = `${client.stream?.remoteAddress}:${client.stream?.remotePort}`;
      if (master !== undefined && now !== master) {
        opts.logger.warn({ tier, from: master, to: now }, 'Redis master changed (Sentinel failover)');
        opts.onMasterChange?.(tier);
      }
      master = now;
    });
  }
  const cacheSubscriber =
    (opts.localCache ?? true)
      ? connectRedis({ sentinels, name: opts.cacheName, ...auth }, subscriberOptions)
      : undefined;
  return {
    cache: createTwoLevelCache({
      redis: cache,
      subscriber: cacheSubscriber,
      maxEntries: opts.cacheMaxEntries,
      maxBytes: opts.cacheMaxBytes,
      defaultTtlSeconds: opts.cacheTtlSeconds,
    }),
    sessions: createRedisSessionStore(durable, opts.sessionTtlSeconds, {
      writer: sessionWriter,
      onUnreplicated: (op) =>
        opts.logger.warn(
          { op },
          'session write not on a replica within 500 ms (WAIT 1); for 1 s session writes do not wait for one',
        ),
    }),
    rateLimiter: createRedisRateLimiter(durable),
    idempotency: createRedisIdempotencyStore(durable),
    timelines: createRedisTimelineStore(cache, opts.timelines),
    connectDurable: () =>
      connectRedis({ sentinels, name: opts.durableName, ...auth }, { ...subscriberOptions, connectTimeout: 2000 }),
    async close() {
      for (const c of [durable, sessionWriter, cache, cacheSubscriber]) c?.disconnect();
    },
  };
}
