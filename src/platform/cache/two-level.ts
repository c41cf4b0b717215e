import { randomBytes } from 'node:crypto';
import { BentoCache, bentostore } from 'bentocache';
import { memoryDriver } from 'bentocache/drivers/memory';
import { redisDriver } from 'bentocache/drivers/redis';
import type { Redis } from 'ioredis';
import type { Cache } from '../../ports/cache.ts';

export interface TwoLevelCacheOptions {
  /** The cache Redis (L2); connect it with `cacheTierOptions`, so a dead tier fails calls at once. */
  redis: Redis;
  /** A second connection to the same tier, for the invalidation channel (a subscriber can do nothing else). */
  subscriber: Redis;
  /** L1 bound, in entries, per web server. */
  maxEntries: number;
  defaultTtlSeconds: number;
  /** A cache call that takes longer is given up (the caller goes to the database). */
  timeoutMs?: number;
  channel?: string;
}

/**
 * Two levels: an in-process L1 in front of the shared cache Redis (L2), with
 * Bentocache (its L1/L2 stack, time limit, circuit breaker). A delete on one
 * web server is published on a Redis channel and every other server drops the
 * keys from its L1. L2 errors are not the caller's: with the cache Redis
 * down, `get` misses and `set`/`delete` act on L1, so the site answers from
 * the database; after one failure L2 is not tried for 5 s (circuit breaker).
 * The channel is published with the fail-fast L2 connection, so a dead tier
 * never holds a request; its subscriber reconnects and resubscribes alone.
 */
export function createTwoLevelCache(options: TwoLevelCacheOptions): Cache {
  const channel = options.channel ?? 'scaleout:cache:invalidate';
  const origin = randomBytes(8).toString('hex');
  const bento = new BentoCache({
    default: 'app',
    ttl: `${options.defaultTtlSeconds}s`,
    timeout: options.timeoutMs ?? 100,
    suppressL2Errors: true,
    l2CircuitBreakerDuration: '5s',
    stores: {
      app: bentostore()
        .useL1Layer(memoryDriver({ maxItems: options.maxEntries }))
        .useL2Layer(redisDriver({ connection: options.redis })),
    },
  });
  const dropLocal = (keys: string[]) => bento.deleteMany({ keys }).catch(() => {});
  options.subscriber.on('message', (ch: string, message: string) => {
    if (ch !== channel) return;
    try {
      const { from, keys } = JSON.parse(message) as { from: string; keys: string[] };
      if (from !== origin) void dropLocal(keys);
    } catch {
      // not ours
    }
  });
  options.subscriber.subscribe(channel).catch(() => {
    // ioredis subscribes again once it reconnects
  });
  let hits = 0;
  let misses = 0;
  return {
    async get<T>(key: string) {
      const value = (await bento.get({ key }).catch(() => undefined)) as T | undefined | null;
      if (value === undefined || value === null) {
        misses++;
        return undefined;
      }
      hits++;
      // Already a copy: Bentocache's L1 keeps values serialised and parses them on each read.
      return value as T;
    },
    async set(key, value, ttlSeconds) {
      await bento
        .set({ key, value: value as unknown, ttl: `${ttlSeconds ?? options.defaultTtlSeconds}s` })
        .catch(() => {});
    },
    async delete(...keys) {
      if (keys.length === 0) return;
      await dropLocal(keys);
      await options.redis.publish(channel, JSON.stringify({ from: origin, keys })).catch(() => {});
    },
    stats: () => ({ hits, misses, size: 0 }),
    onLookup(listener) {
      bento.on('cache:hit', (e) => listener({ key: e.key, result: 'hit', level: e.layer }));
      bento.on('cache:miss', (e) => listener({ key: e.key, result: 'miss' }));
    },
    async close() {
      // A dead cache Redis must not fail a shutdown.
      await bento.disconnectAll().catch(() => {});
      options.subscriber.disconnect();
    },
  };
}
