/** A cache of JSON-serialisable values. Never the only copy of any data. */
export interface Cache {
  get<T>(key: string): Promise<T | undefined>;
  set<T>(key: string, value: T, ttlSeconds?: number): Promise<void>;
  delete(...keys: string[]): Promise<void>;
  /** Counters since start, for metrics. */
  stats(): { hits: number; misses: number; size: number };
  close(): Promise<void>;
}

/** Cache-aside: return the cached value, or load, store and return it. */
export async function cached<T>(
  cache: Cache,
  key: string,
  load: () => Promise<T | undefined>,
  ttlSeconds?: number,
): Promise<T | undefined> {
  const hit = await cache.get<T>(key);
  if (hit !== undefined) return hit;
  const value = await load();
  if (value !== undefined) await cache.set(key, value, ttlSeconds);
  return value;
}
