/** A cache of JSON-serialisable values. Never the only copy of any data. */
export interface Cache {
  get<T>(key: string): Promise<T | undefined>;
  /** Stores a value; with a lease, only when no delete of the key happened since the lease was taken. */
  set<T>(key: string, value: T, ttlSeconds?: number, lease?: CacheLease): Promise<void>;
  delete(...keys: string[]): Promise<void>;
  /**
   * A fill lease, taken before a value is loaded from the database. A slow
   * load may read a row, then a writer changes it and deletes the key, then
   * the load stores what it read: a stale value that would stay until it
   * expires. A `set` with the lease stores nothing when the key was deleted
   * after the lease was taken (on any web server), as memcache's leases do.
   */
  lease(key: string): Promise<CacheLease>;
  /** Counters since start, for metrics. */
  stats(): { hits: number; misses: number; size: number; bytes?: number };
  /** Tells `listener` of every lookup: hit or miss, and on which level a hit was found. */
  onLookup(listener: (lookup: CacheLookup) => void): void;
  close(): Promise<void>;
}

/** A cache that can drop everything it holds: what a process does when it may have missed an invalidation. */
export type ClearableCache = Cache & { clear(): void | Promise<void> };

/** Opaque: what a cache needs to tell whether a key was deleted since. */
export interface CacheLease {
  readonly key: string;
  readonly local: number;
  readonly takenAt: number;
  readonly shared?: string | null;
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

/** How long a value is kept past its TTL, to be served while its source fails (grace). */
export const graceSeconds = 300;

/** A value with the time it stops being fresh; it is kept `graceSeconds` longer. */
interface Graced<T> {
  __graced: T;
  freshUntil: number;
}

/** The entry to store for `value` fresh for `ttlSeconds`, and the TTL to store it with (TTL + grace). */
export function withGrace<T>(value: T, ttlSeconds: number, now = Date.now()): { entry: Graced<T>; ttl: number } {
  return { entry: { __graced: value, freshUntil: now + ttlSeconds * 1000 }, ttl: ttlSeconds + graceSeconds };
}

/** A cached entry's value and whether it is still fresh (a value stored without grace always is). */
export function readGrace<T>(hit: unknown, now = Date.now()): { value: T; fresh: boolean } | undefined {
  if (hit === undefined) return undefined;
  if (typeof hit === 'object' && hit !== null && '__graced' in hit) {
    const g = hit as Graced<T>;
    return { value: g.__graced, fresh: g.freshUntil > now };
  }
  return { value: hit as T, fresh: true };
}

const notStoredMark = Symbol('not stored');
/** A loaded value to return but not to keep (a replica's answer, which may lag the primary's). */
export interface NotStored<T> {
  readonly [notStoredMark]: T;
}
export const notStored = <T>(value: T): NotStored<T> => ({ [notStoredMark]: value });
const isNotStored = <T>(v: unknown): v is NotStored<T> => typeof v === 'object' && v !== null && notStoredMark in v;

/**
 * Cache-aside: the cached value, or load, store and return it (a load's
 * `notStored(value)` is returned and not kept). One load per
 * key at a time in a process (stampede protection): concurrent misses wait
 * for it. A given TTL is jittered. "Not found" is cached too, for
 * `negativeTtlSeconds` (5 s; 0 turns it off), so whoever writes the thing
 * must delete the key. The fill holds a lease: a delete while it loads wins.
 * With a TTL, the value is kept `graceSeconds` past it: a read after the TTL
 * loads again, and when that load fails (the database is down) it gets the
 * old value instead of the error.
 */
export async function cached<T>(
  cache: Cache,
  key: string,
  load: () => Promise<T | undefined | NotStored<T | undefined>>,
  ttlSeconds?: number,
  opts: { negativeTtlSeconds?: number } = {},
): Promise<T | undefined> {
  const hit = readGrace<T>(await cache.get(key));
  if (hit?.fresh) return isAbsent(hit.value) ? undefined : hit.value;
  let loads = inflight.get(cache);
  if (!loads) {
    loads = new Map();
    inflight.set(cache, loads);
  }
  const running = loads.get(key) as Promise<T | undefined> | undefined;
  if (running) return running;
  const negativeTtl = opts.negativeTtlSeconds ?? 5;
  const loading = (async () => {
    const lease = await cache.lease(key);
    let loaded: T | undefined | NotStored<T | undefined>;
    try {
      loaded = await load();
    } catch (err) {
      // Grace: the source failed, the last value is better than an error.
      if (hit && !isAbsent(hit.value)) return hit.value;
      throw err;
    }
    if (isNotStored<T | undefined>(loaded)) {
      const value = loaded[notStoredMark];
      // The last value kept in grace is as good as a replica's, and the cache's own.
      return value === undefined && hit && !isAbsent(hit.value) ? hit.value : value;
    }
    const value = loaded;
    if (value === undefined) {
      if (negativeTtl > 0) await cache.set(key, absent, negativeTtl, lease);
    } else if (ttlSeconds === undefined) {
      await cache.set(key, value, undefined, lease);
    } else {
      const { entry, ttl } = withGrace(value, jittered(ttlSeconds));
      await cache.set(key, entry, ttl, lease);
    }
    return value;
  })();
  loads.set(key, loading);
  try {
    return await loading;
  } finally {
    loads.delete(key);
  }
}

/** How long a lease is good for: a load slower than this stores nothing (deletes are remembered this long). */
export const leaseMs = 30_000;

export type LocalLeases = ReturnType<typeof createLocalLeases>;

/**
 * The in-process half of leases: a sequence number per delete, remembered for
 * `leaseMs`. Both adapters use it for deletes seen in this process (their own,
 * and for the two-level cache, those broadcast by other web servers).
 */
export function createLocalLeases(now: () => number = Date.now) {
  let seq = 0;
  const deleted = new Map<string, { seq: number; at: number }>();
  const prune = () => {
    const horizon = now() - leaseMs;
    for (const [key, d] of deleted) {
      if (d.at >= horizon) break; // insertion order is time order
      deleted.delete(key);
    }
  };
  /** Leases taken at or before this sequence number are void (`deletedAll`). */
  let voidUpTo = -1;
  return {
    take: (key: string): CacheLease => ({ key, local: seq, takenAt: now() }),
    /** Every key counts as deleted: what may have been missed is unknown. */
    deletedAll() {
      voidUpTo = seq++;
    },
    deleted(keys: string[]) {
      for (const key of keys) {
        deleted.delete(key);
        deleted.set(key, { seq: ++seq, at: now() });
      }
      if (deleted.size > 10_000) prune();
    },
    /** False when the key was deleted since the lease, or the lease is too old to tell. */
    valid(lease: CacheLease): boolean {
      if (now() - lease.takenAt > leaseMs || lease.local <= voidUpTo) return false;
      const d = deleted.get(lease.key);
      return d === undefined || d.seq <= lease.local;
    },
  };
}
