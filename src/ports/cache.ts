/** A cache of JSON-serialisable values. Never the only copy of any data. */
export interface Cache {
  get<T>(key: string): Promise<T | undefined>;
  set<T>(key: string, value: T, ttlSeconds?: number): Promise<void>;
  delete(...keys: string[]): Promise<void>;
  /** Counters since start, for metrics. */
  stats(): { hits: number; misses: number; size: number };
  /** Tells `listener` of every lookup: hit or miss, and on which level a hit was found. */
  onLookup(listener: (lookup: CacheLookup) => void): void;
  close(): Promise<void>;
}

export interface CacheLookup {
  key: string;
  result: 'hit' | 'miss';
  /** Where a hit was found: the process (l1) or the shared cache (l2). */
  level?: 'l1' | 'l2';
}

/** The data class of a key, for metrics: what comes before its first colon (photo, profile, session, …). */
export const keyClass = (key: string): string => key.slice(0, Math.max(0, key.indexOf(':'))) || 'other';

/** What is cached for "there is no such thing", so that repeated misses do not reach the database. */
export const absent = { __absent: true } as const;
export const isAbsent = (v: unknown): boolean => typeof v === 'object' && v !== null && '__absent' in v;

/** Loads running in this process, per cache and key: concurrent misses share one. */
const inflight = new WeakMap<Cache, Map<string, Promise<unknown>>>();

/** A TTL spread by ±10 %, so entries filled together do not all expire together. */
export function jittered(ttlSeconds: number, random = Math.random): number {
  return Math.max(1, Math.round(ttlSeconds * (0.9 + 0.2 * random())));
}

/**
 * Cache-aside: the cached value, or load, store and return it. One load per
 * key at a time in a process (stampede protection): concurrent misses wait
 * for it. A given TTL is jittered. "Not found" is cached too, for
 * `negativeTtlSeconds` (5 s; 0 turns it off), so whoever writes the thing
 * must delete the key.
 */
export async function cached<T>(
  cache: Cache,
  key: string,
  load: () => Promise<T | undefined>,
  ttlSeconds?: number,
  opts: { negativeTtlSeconds?: number } = {},
): Promise<T | undefined> {
  const hit = await cache.get<T>(key);
  if (hit !== undefined) return isAbsent(hit) ? undefined : hit;
  let loads = inflight.get(cache);
  if (!loads) {
    loads = new Map();
    inflight.set(cache, loads);
  }
  const running = loads.get(key) as Promise<T | undefined> | undefined;
  if (running) return running;
  const negativeTtl = opts.negativeTtlSeconds ?? 5;
  const loading = (async () => {
    const value = await load();
    if (value !== undefined) await cache.set(key, value, ttlSeconds === undefined ? undefined : jittered(ttlSeconds));
    else if (negativeTtl > 0) await cache.set(key, absent, negativeTtl);
    return value;
  })();
  loads.set(key, loading);
  try {
    return await loading;
  } finally {
    loads.delete(key);
  }
}
