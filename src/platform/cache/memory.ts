import { type CacheLookup, type ClearableCache, createLocalLeases, type LocalLeases } from '../../ports/cache.ts';
import { type EvictionPolicy, evictionOrder } from './eviction.ts';

export interface MemoryCacheOptions {
  policy: EvictionPolicy;
  maxEntries: number;
  /**
   * A bound on what the entries hold, in bytes of their JSON (a value's
   * objects take about three times that in V8's heap). Whichever bound is
   * reached first evicts; without it, only the count does.
   */
  maxBytes?: number;
  defaultTtlSeconds: number;
  now?: () => number;
  /** Where deletes are recorded for fill leases; a cache built on this one (two-level) shares it. */
  leases?: LocalLeases;
}

/** Freezes a value parsed from JSON, all the way down. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * An in-process cache bounded by entry count and by size. A value goes through JSON once,
 * when it is set (so it is what Redis would give back: dates become strings),
 * and is kept deeply frozen: every hit returns the same object without
 * copying it, and no caller can change what is cached (a write throws).
 */
/** The in-process cache; `clear` drops every entry (a missed invalidation). */
export type MemoryCache = ClearableCache & { clear(): void };

export function createMemoryCache(options: MemoryCacheOptions): MemoryCache {
  const now = options.now ?? Date.now;
  const entries = new Map<string, { value: unknown; expiresAt: number; bytes: number }>();
  const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
  let bytes = 0;
  const order = evictionOrder(options.policy);
  let hits = 0;
  let misses = 0;
  const listeners: ((lookup: CacheLookup) => void)[] = [];
  const leases = options.leases ?? createLocalLeases(now);

  const drop = (key: string) => {
    const entry = entries.get(key);
    if (!entry) return;
    bytes -= entry.bytes;
    entries.delete(key);
    order.remove(key);
  };

  return {
    async get<T>(key: string) {
      const entry = entries.get(key);
      if (!entry || entry.expiresAt <= now()) {
        if (entry) drop(key);
        misses++;
        for (const l of listeners) l({ key, result: 'miss' });
        return undefined;
      }
      hits++;
      for (const l of listeners) l({ key, result: 'hit', level: 'l1' });
      order.touch(key);
      return entry.value as T;
    },
    async set(key, value, ttlSeconds, lease) {
      if (lease && !leases.valid(lease)) return;
      const json = JSON.stringify(value);
      if (json === undefined) throw new TypeError(`cache value for ${key} is not serialisable`);
      const ttl = ttlSeconds ?? options.defaultTtlSeconds;
      // One character of JSON is a byte for this bound (the values are mostly ASCII).
      const size = json.length + key.length;
      // A value bigger than the whole bound is not kept (it would empty the cache for itself).
      if (size > maxBytes) return drop(key);
      drop(key);
      while (entries.size >= options.maxEntries || bytes + size > maxBytes) {
        const victim = order.victim();
        if (victim === undefined) break;
        drop(victim);
      }
      entries.set(key, { value: deepFreeze(JSON.parse(json)), expiresAt: now() + ttl * 1000, bytes: size });
      bytes += size;
      order.add(key);
    },
    async delete(...keys) {
      for (const key of keys) drop(key);
      leases.deleted(keys);
    },
    lease: async (key) => leases.take(key),
    stats: () => ({ hits, misses, size: entries.size, bytes }),
    onLookup: (listener) => {
      listeners.push(listener);
    },
    clear() {
      for (const key of [...entries.keys()]) drop(key);
      // Every key counts as deleted for a fill that is loading now.
      leases.deletedAll();
    },
    async close() {
      entries.clear();
    },
  };
}
