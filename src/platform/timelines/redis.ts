import type { Redis } from 'ioredis';
import { type TimelineEntry, type TimelineStore, TimelineUnavailableError } from '../../ports/timelines.ts';

export interface RedisTimelineOptions {
  /** Entries kept per timeline (Mastodon and Twitter keep 800). */
  maxEntries: number;
  /** A timeline not read for this long expires (its owner is inactive): pushes skip it from then on. */
  ttlSeconds: number;
  /** After a failed call, calls fail at once for this long (the caller reads the database). */
  breakerMs?: number;
  prefix?: string;
}

// A timeline is a sorted set: photo ids scored by their time in ms. Equal
// scores sort by id, so a reverse range is the feed's (at, id) order. One
// marker member at +inf says whether it is being built or built.
const building = '~building';
const built = '~built';
// A second marker once the timeline was cut to its cap (or built from a capped read).
const partial = '~partial';

// Trims to the newest `cap` entries plus the markers, and marks a cut timeline partial.
const trim = `
local function trim(k, cap)
  local m = 1
  if redis.call('ZSCORE', k, '${partial}') then m = 2 end
  local n = redis.call('ZCARD', k)
  if n > cap + m then
    redis.call('ZREMRANGEBYRANK', k, 0, n - cap - m - 1)
    if m == 1 then
      redis.call('ZADD', k, '+inf', '${partial}')
      redis.call('ZREMRANGEBYRANK', k, 0, 0)
    end
  end
end
`;

const scripts = {
  // KEYS[1] timeline; ARGV: ttl ms, before-at ('' for none), limit → false | {ties, older, partial}
  timelineRead: {
    numberOfKeys: 1,
    lua: `
if not redis.call('ZSCORE', KEYS[1], '${built}') then return false end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local limit = tonumber(ARGV[3])
local cut = 0
if redis.call('ZSCORE', KEYS[1], '${partial}') then cut = 1 end
if ARGV[2] == '' then
  return {{}, redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, limit + 2), cut}
end
return {
  redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[2]),
  redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '-inf', 'WITHSCORES', 'LIMIT', 0, limit),
  cut
}`,
  },
  // KEYS[1] timeline; ARGV: ttl ms
  timelineBegin: {
    numberOfKeys: 1,
    lua: `
if not redis.call('ZSCORE', KEYS[1], '${built}') then redis.call('ZADD', KEYS[1], '+inf', '${building}') end
redis.call('PEXPIRE', KEYS[1], ARGV[1])`,
  },
  // KEYS[1] timeline; ARGV: cap, ttl ms, complete (1/0), at1, id1, at2, id2, … → 1 stored, 0 dropped meanwhile
  timelineFinish: {
    numberOfKeys: 1,
    lua: `${trim}
local k = KEYS[1]
if redis.call('ZSCORE', k, '${built}') then return 1 end
if not redis.call('ZSCORE', k, '${building}') then return 0 end
if ARGV[3] == '0' then redis.call('ZADD', k, '+inf', '${partial}') end
for i = 4, #ARGV, 2000 do
  redis.call('ZADD', k, unpack(ARGV, i, math.min(i + 1999, #ARGV)))
end
redis.call('ZREM', k, '${building}')
redis.call('ZADD', k, '+inf', '${built}')
trim(k, tonumber(ARGV[1]))
redis.call('PEXPIRE', k, ARGV[2])
return 1`,
  },
  // KEYS: timelines; ARGV: cap, at1, id1, … (entries added to each timeline that exists)
  timelineAdd: {
    lua: `${trim}
local cap = tonumber(ARGV[1])
for _, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then
    for i = 2, #ARGV, 2000 do
      redis.call('ZADD', k, unpack(ARGV, i, math.min(i + 1999, #ARGV)))
    end
    trim(k, cap)
  end
end`,
  },
  // KEYS[1] timeline; ARGV: ids
  timelineUnmerge: {
    numberOfKeys: 1,
    lua: `
if redis.call('ZSCORE', KEYS[1], '${built}') then
  for i = 1, #ARGV, 2000 do
    redis.call('ZREM', KEYS[1], unpack(ARGV, i, math.min(i + 1999, #ARGV)))
  end
else
  redis.call('DEL', KEYS[1])
end`,
  },
} as const;

type Scripted = Redis & {
  timelineRead(
    key: string,
    ttlMs: number,
    beforeAt: string,
    limit: number,
  ): Promise<[string[], string[], number] | null>;
  timelineBegin(key: string, ttlMs: number): Promise<void>;
  timelineFinish(
    key: string,
    cap: number,
    ttlMs: number,
    complete: 0 | 1,
    ...pairs: (string | number)[]
  ): Promise<number>;
  timelineAdd(numberOfKeys: number, ...keysThenArgs: (string | number)[]): Promise<void>;
  timelineUnmerge(key: string, ...ids: string[]): Promise<void>;
};

const pairs = (entries: TimelineEntry[]) => entries.flatMap((e) => [e.at, e.id]);

/** Keys per script call when one entry goes to many timelines (a fan-out). */
const keysPerCall = 500;

/**
 * Timelines in the cache Redis, as Mastodon keeps home feeds: a sorted set
 * per owner, trimmed to `maxEntries`, each step one Lua script (atomic on
 * the server). Every call carries the cache tier's time limit; after a
 * failure the store answers TimelineUnavailableError for `breakerMs`
 * without trying Redis, so a dead tier costs a feed read nothing.
 */
export function createRedisTimelineStore(redis: Redis, options: RedisTimelineOptions): TimelineStore {
  for (const [name, s] of Object.entries(scripts)) {
    redis.defineCommand(name, { lua: s.lua, ...('numberOfKeys' in s ? { numberOfKeys: s.numberOfKeys } : {}) });
  }
  const r = redis as Scripted;
  const prefix = options.prefix ?? 'tl:';
  const key = (owner: string) => prefix + owner;
  const ttlMs = options.ttlSeconds * 1000;
  const breakerMs = options.breakerMs ?? 5000;
  let openUntil = 0;
  const call = async <T>(run: () => Promise<T>): Promise<T> => {
    if (Date.now() < openUntil) throw new TimelineUnavailableError('timelines unavailable (circuit open)');
    // Not connected (starting, or the master is gone and Sentinel not yet answered): fail at once, no breaker.
    if (redis.status !== 'ready') throw new TimelineUnavailableError(`timelines unavailable: Redis ${redis.status}`);
    try {
      return await run();
    } catch (err) {
      openUntil = Date.now() + breakerMs;
      throw new TimelineUnavailableError(`timelines unavailable: ${(err as Error).message}`, { cause: err });
    }
  };

  return {
    read: (owner, opts) =>
      call(async () => {
        const reply = await r.timelineRead(key(owner), ttlMs, opts.before ? String(opts.before.at) : '', opts.limit);
        if (!reply) return undefined;
        const [ties, older, cut] = reply;
        const out: TimelineEntry[] = [];
        // Ties come oldest id first; the feed wants them newest (highest id) first, below the cursor's id.
        const before = opts.before;
        if (before) {
          for (const id of ties.reverse()) if (id < before.id && !id.startsWith('~')) out.push({ id, at: before.at });
        }
        for (let i = 0; i < older.length && out.length < opts.limit; i += 2) {
          const id = older[i] as string;
          if (!id.startsWith('~')) out.push({ id, at: Number(older[i + 1]) });
        }
        return { entries: out.slice(0, opts.limit), complete: cut === 0 };
      }),
    beginBuild: (owner) => call(() => r.timelineBegin(key(owner), ttlMs)),
    finishBuild: (owner, entries, complete) =>
      call(
        async () =>
          (await r.timelineFinish(key(owner), options.maxEntries, ttlMs, complete ? 1 : 0, ...pairs(entries))) === 1,
      ),
    push: (owners, entry) =>
      call(async () => {
        for (let i = 0; i < owners.length; i += keysPerCall) {
          const keys = owners.slice(i, i + keysPerCall).map(key);
          await r.timelineAdd(keys.length, ...keys, options.maxEntries, entry.at, entry.id);
        }
      }),
    merge: (owner, entries) =>
      call(async () => {
        if (entries.length > 0) await r.timelineAdd(1, key(owner), options.maxEntries, ...pairs(entries));
      }),
    unmerge: (owner, ids) =>
      call(async () => {
        await r.timelineUnmerge(key(owner), ...ids);
      }),
    remove: (owners, id) =>
      call(async () => {
        const pipeline = r.pipeline();
        for (const owner of owners) pipeline.zrem(key(owner), id);
        const results = await pipeline.exec();
        const failed = results?.find(([err]) => err);
        if (failed) throw failed[0];
      }),
    drop: (owner) =>
      call(async () => {
        await r.del(key(owner));
      }),
    async close() {},
  };
}
