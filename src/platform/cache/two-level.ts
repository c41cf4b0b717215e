import { randomBytes } from 'node:crypto';
import type { Redis, Result } from 'ioredis';
import { type CacheLookup, type ClearableCache, createLocalLeases, leaseMs } from '../../ports/cache.ts';
import { createMemoryCache } from './memory.ts';

export interface TwoLevelCacheOptions {
  /** The cache Redis (L2); connect it with `cacheTierOptions`, so a dead tier fails calls at once. */
  redis: Redis;
  /**
   * A second connection to the same tier, for the invalidation channel (a
   * subscriber can do nothing else). Without one there is no L1: a process
   * that serves no reads (a worker) neither keeps copies nor hears of every
   * other process's deletes; its own deletes still reach everyone.
   */
  subscriber?: Redis;
  /** L1 bound, in entries, per web server. */
  maxEntries: number;
  /** L1 bound, in bytes of the values' JSON. */
  maxBytes?: number;
  defaultTtlSeconds: number;
  /** After an L2 read or write fails, L2 is left alone this long (a circuit breaker; 5 s). */
  breakerMs?: number;
  channel?: string;
}

/** What the cache Redis holds for a key: the value and when it expires (ms), so an L1 fill keeps the same expiry. */
interface Stored {
  v: unknown;
  exp: number;
}

/**
 * An L2 entry as Bentocache 1.x writes it (this cache's L2 went through
 * Bentocache before): the same key and the same JSON, so web servers of the
 * two versions share L2 during a rolling deploy.
 */
interface L2Entry {
  value: Stored;
  createdAt: number;
  logicalExpiration: number;
}

/** The L2 key of a cache key. */
const l2Prefix = 'bentocache';
const l2Key = (key: string) => `${l2Prefix}:${key}`;
/** Deletes are counted per key in the cache Redis (kept as long as a lease lasts). */
const deletions = (key: string) => `scaleout:deleted:${key}`;

/**
 * A fill's store, in one step on the cache Redis: the value is set only while
 * the key's delete count is still the one its lease read (none: `ARGV[3]` is
 * empty and the count must be absent). A delete counts first and unlinks
 * after, so a store either lands before the count (and the unlink removes it)
 * or sees the count changed and stores nothing: memcache's lease, checked
 * where the value is kept.
 */
const storeIfNotDeleted = `
local n = redis.call('GET', KEYS[2])
if (n or '') ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

/** How long a delete count read by a miss is reused by the lease that follows it (the same request's fill). */
const leaseReuseMs = 1000;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    scaleoutStoreIfNotDeleted(
      key: string,
      deletionsKey: string,
      value: string,
      ttlMs: number,
      count: string,
    ): Result<number, Context>;
  }
}

/**
 * Two levels: an in-process L1 in front of the shared cache Redis (L2). L1 is
 * this project's in-process cache (values frozen once, handed out without a
 * copy: 0.25 µs a hit). L2 is read and written with plain commands, so the
 * lookups of one page that miss L1 go out together in one auto-pipelined
 * write. A miss reads the value and the key's delete count in one MGET, and
 * the lease of the fill that follows reuses that count; the fill's store is
 * checked against it in Redis itself (`storeIfNotDeleted`): a fill is two
 * round trips. A delete on one web server is counted, unlinked and published
 * on a Redis channel in one pipeline, and every other server drops the keys
 * from its L1. L2 errors are not the caller's: with the cache Redis down,
 * `get` misses and `set`/`delete` act on L1, so the site answers from the
 * database; after one failure L2 reads and writes are not tried for 5 s (a
 * circuit breaker), but deletes always are (another server's L1 must not
 * refill from a stale L2 copy: a session logged out on one web server would
 * live on on another). The subscriber reconnects and resubscribes alone.
 */
export function createTwoLevelCache(options: TwoLevelCacheOptions): ClearableCache {
  const { redis } = options;
  const channel = options.channel ?? 'scaleout:cache:invalidate';
  const breakerMs = options.breakerMs ?? 5000;
  const origin = randomBytes(8).toString('hex');
  redis.defineCommand('scaleoutStoreIfNotDeleted', { numberOfKeys: 2, lua: storeIfNotDeleted });
  // Deletes seen here (this server's and those broadcast by others) are recorded by L1's delete, for the fills' leases.
  const leases = createLocalLeases();
  const l1 = createMemoryCache({
    policy: 'lru',
    maxEntries: options.maxEntries,
    maxBytes: options.maxBytes,
    defaultTtlSeconds: options.defaultTtlSeconds,
    leases,
  });
  const local = options.subscriber !== undefined;
  const dropLocal = (keys: string[]) => l1.delete(...keys);
  const listeners: ((lookup: CacheLookup) => void)[] = [];
  const tell = (lookup: CacheLookup) => {
    for (const l of listeners) l(lookup);
  };

  let openUntil = 0;
  /** An L2 call, or undefined when it fails (which opens the breaker) or while the breaker is open. */
  const l2 = async <T>(call: () => Promise<T>): Promise<T | undefined> => {
    if (Date.now() < openUntil) return undefined;
    try {
      return await call();
    } catch {
      openUntil = Date.now() + breakerMs;
      return undefined;
    }
  };

  // The delete counts that misses read (null: none), for the leases their fills take next.
  const missCounts = new Map<string, { count: string | null; at: number }>();
  const rememberCount = (key: string, count: string | null) => {
    missCounts.delete(key);
    missCounts.set(key, { count, at: Date.now() });
    if (missCounts.size > 1000) {
      const horizon = Date.now() - leaseReuseMs;
      for (const [k, c] of missCounts) {
        if (c.at >= horizon) break; // insertion order is time order
        missCounts.delete(k);
      }
    }
  };
  /** The count a recent miss read: a lease may start from it (a delete since then voids the fill, as it should). */
  const recentCount = (key: string): string | null | undefined => {
    const c = missCounts.get(key);
    if (!c) return undefined;
    missCounts.delete(key);
    return Date.now() - c.at <= leaseReuseMs ? c.count : undefined;
  };

  options.subscriber?.on('message', (ch: string, message: string) => {
    if (ch !== channel) return;
    try {
      const { from, keys } = JSON.parse(message) as { from: string; keys: string[] };
      if (from !== origin) void dropLocal(keys);
    } catch {
      // not ours
    }
  });
  options.subscriber?.subscribe(channel).catch(() => {
    // ioredis subscribes again once it reconnects
  });
  /**
   * Counts the delete in the cache Redis, drops the keys from L2 and tells
   * every other web server to drop them from its L1, in that order and in one
   * round trip; then drops them from this L1. In that order, a fill's store
   * either lands before the count (and the unlink removes it) or finds the
   * count changed and stores nothing. Never skipped by the breaker.
   */
  const remove = async (...keys: string[]) => {
    if (keys.length === 0) return;
    const marks = redis.pipeline();
    for (const key of keys) marks.incr(deletions(key)).pexpire(deletions(key), leaseMs).unlink(l2Key(key));
    marks.publish(channel, JSON.stringify({ from: origin, keys }));
    await marks.exec().catch(() => {});
    await dropLocal(keys);
  };
  /** Stores in L2 as Bentocache would (see L2Entry); with a lease's count, only while it is unchanged. */
  const storeL2 = async (key: string, stored: Stored, ttlMs: number, count: string | null | undefined) => {
    const px = Math.max(1, Math.round(ttlMs)); // SET PX takes whole milliseconds
    const json = JSON.stringify({
      value: stored,
      createdAt: Date.now(),
      logicalExpiration: stored.exp,
    } satisfies L2Entry);
    if (count === undefined) {
      await l2(() => redis.set(l2Key(key), json, 'PX', px));
      return true;
    }
    const done = await l2(() => redis.scaleoutStoreIfNotDeleted(l2Key(key), deletions(key), json, px, count ?? ''));
    // Redis could not tell (down, breaker open): only this process's deletes are known, as without a count.
    return done !== 0;
  };
  let hits = 0;
  let misses = 0;
  return {
    async get<T>(key: string) {
      const copy = local ? await l1.get<T>(key) : undefined;
      if (copy !== undefined) {
        hits++;
        tell({ key, result: 'hit', level: 'l1' });
        return copy;
      }
      // A delete that arrives while L2 answers must win over the L1 fill below.
      const lease = leases.take(key);
      const [raw, count] = (await l2(() => redis.mget(l2Key(key), deletions(key)))) ?? [];
      const entry = raw ? (JSON.parse(raw) as L2Entry) : undefined;
      const stored = entry?.value;
      const ttlMs = stored && entry.logicalExpiration > Date.now() ? stored.exp - Date.now() : 0;
      // A fill may follow (a miss, or a value past its freshness: see `cached`): its lease starts from this count.
      if (raw !== undefined) rememberCount(key, count ?? null);
      if (!stored || ttlMs <= 0) {
        misses++;
        tell({ key, result: 'miss' });
        return undefined;
      }
      if (local) await l1.set(key, stored.v, Math.max(1, Math.floor(ttlMs / 1000)), lease);
      hits++;
      tell({ key, result: 'hit', level: 'l2' });
      return stored.v as T;
    },
    async set(key, value, ttlSeconds, lease) {
      if (lease && !leases.valid(lease)) return;
      const ttl = ttlSeconds ?? options.defaultTtlSeconds;
      const stored: Stored = { v: value, exp: Date.now() + ttl * 1000 };
      if (!(await storeL2(key, stored, ttl * 1000, lease?.shared))) return;
      // A delete seen here while L2 stored: L2's copy is gone with it (its unlink came after), so L1 keeps none either.
      if (lease && !leases.valid(lease)) return;
      if (local) await l1.set(key, value, ttl);
    },
    delete: remove,
    async lease(key) {
      const taken = leases.take(key);
      // null: never deleted (or not for a lease's time); undefined: the cache Redis did not answer.
      const reused = recentCount(key);
      if (reused !== undefined) return { ...taken, shared: reused };
      const shared = await l2(() => redis.get(deletions(key)));
      return { ...taken, shared: shared === undefined ? undefined : shared };
    },
    stats: () => {
      const { size, bytes } = l1.stats();
      return { hits, misses, size, bytes };
    },
    onLookup(listener) {
      listeners.push(listener);
    },
    /** Everything goes, from L1 and from the cache Redis (a missed invalidation: see withSharedInvalidation). */
    async clear() {
      l1.clear();
      await clearL2(redis).catch(() => {});
    },
    async close() {
      await l1.close();
      missCounts.clear();
      options.subscriber?.disconnect();
    },
  };
}

/** Unlinks every L2 entry (SCAN by the prefix, in batches). */
async function clearL2(redis: Redis): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${l2Prefix}:*`, 'COUNT', 1000);
    if (keys.length) await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}
