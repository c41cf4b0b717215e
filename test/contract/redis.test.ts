import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BentoCache, bentostore } from 'bentocache';
import { redisDriver } from 'bentocache/drivers/redis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../src/bench/processes.ts';
import { redisCommand } from '../../src/cluster/components/redis/server.ts';
import { startProcess, stopProcess, waitUntil } from '../../src/cluster/process.ts';
import { createTwoLevelCache } from '../../src/platform/cache/two-level.ts';
import { createRedisIdempotencyStore } from '../../src/platform/idempotency/redis.ts';
import { createRedisRateLimiter } from '../../src/platform/rate-limits/redis.ts';
import { cacheTierOptions, connectRedis, subscriberOptions } from '../../src/platform/redis/connect.ts';
import { createRedisSessionStore } from '../../src/platform/sessions/redis.ts';
import { createRedisTimelineStore } from '../../src/platform/timelines/redis.ts';
import { cached } from '../../src/ports/cache.ts';
import { runCacheContract } from './cache.contract.ts';
import { runIdempotencyContract } from './idempotency.contract.ts';
import { runRateLimiterContract } from './rate-limits.contract.ts';
import { runSessionContract } from './sessions.contract.ts';
import { runTimelineContract } from './timelines.contract.ts';

const { host, port } = inject('redis');
const connections: ReturnType<typeof connectRedis>[] = [];
const connect = () => {
  const c = connectRedis({ host, port });
  connections.push(c);
  return c;
};
afterAll(async () => {
  for (const c of connections) c.disconnect();
});
/** One web server's two-level cache on the test Redis. */
const webServerCache = (maxEntries = 100) =>
  createTwoLevelCache({
    redis: connect(),
    subscriber: connectRedis({ host, port }, subscriberOptions),
    maxEntries,
    defaultTtlSeconds: 60,
  });

/** A Redis of this file's own with no replica (as a durable master has none just after a failover), to pause at will. */
let lone: { pid: number; port: number; dir: string } | undefined;
const connectLone = (options = {}) => {
  const c = connectRedis({ host: '127.0.0.1', port: lone?.port ?? 0 }, options);
  connections.push(c);
  return c;
};
beforeAll(async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'scaleout-lone-redis-'));
  const port = await freePort();
  const started = startProcess({
    command: '/usr/bin/redis-server',
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    log: path.join(dir, 'redis.log'),
    cwd: dir,
  });
  lone = { pid: started.pid, port, dir };
  await waitUntil(async () => (await redisCommand('127.0.0.1', port, 'PING')) === 'PONG', 10_000);
});
afterAll(async () => {
  if (!lone) return;
  await stopProcess(lone.pid);
  rmSync(lone.dir, { recursive: true, force: true });
});

runSessionContract({
  name: 'Redis (durable tier, WAIT 1)',
  create: async (ttl) => ({
    store: createRedisSessionStore(connect(), ttl, { writer: connect() }),
    userId: 'user_redis',
    cleanup: async () => {},
  }),
  restartable: async () => ({
    userId: 'user_redis_restart',
    // A new connection is a new web server: the sessions are in Redis, not in the process.
    open: async () => ({ store: createRedisSessionStore(connect(), 3600), close: async () => {} }),
    cleanup: async () => {},
  }),
});

runCacheContract({
  name: 'two-level (in-process L1 + Redis L2)',
  create: async ({ maxEntries }) => webServerCache(maxEntries),
  skipEviction: 'L2 holds what L1 evicts: the bound is the cache Redis maxmemory, not an entry count',
});

runTimelineContract({
  name: 'Redis (cache tier, sorted sets)',
  create: async ({ maxEntries }) => {
    // The cache tier's connection has no offline queue: wait until it is up, as a web server does before serving.
    const c = connectRedis({ host, port }, cacheTierOptions);
    connections.push(c);
    if (c.status !== 'ready') await once(c, 'ready');
    return createRedisTimelineStore(c, { maxEntries, ttlSeconds: 3600 });
  },
});

runRateLimiterContract({ name: 'Redis (durable tier)', create: async () => createRedisRateLimiter(connect()) });
runIdempotencyContract({ name: 'Redis (durable tier)', create: async () => createRedisIdempotencyStore(connect()) });

describe('two-level cache across web servers', () => {
  it('a delete on one server reaches the L1 of another through the bus', async () => {
    const [a, b] = [webServerCache(), webServerCache()];
    await new Promise((r) => setTimeout(r, 200)); // both subscribed
    const key = `bus:${randomBytes(4).toString('hex')}`;
    try {
      await a.set(key, { v: 1 });
      expect(await b.get(key)).toEqual({ v: 1 }); // from L2, now in b's L1 too
      await a.delete(key);
      // b's L1 hears of the delete on the bus.
      let seen: unknown = { v: 1 };
      for (let i = 0; i < 50 && seen !== undefined; i++) {
        await new Promise((r) => setTimeout(r, 20));
        seen = await b.get(key);
      }
      expect(seen).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a worker’s cache (no subscriber) keeps no L1: it reads what others set, and its deletes reach their L1', async () => {
    const web = webServerCache();
    const worker = createTwoLevelCache({ redis: connect(), maxEntries: 100, defaultTtlSeconds: 60 });
    await new Promise((r) => setTimeout(r, 200));
    const key = `worker:${randomBytes(4).toString('hex')}`;
    try {
      await web.set(key, { v: 1 });
      expect(await worker.get(key)).toEqual({ v: 1 });
      expect(worker.stats().size).toBe(0);
      await web.set(key, { v: 2 });
      // No copy of its own to go stale: the next read is the new value.
      expect(await worker.get(key)).toEqual({ v: 2 });
      expect(await web.get(key)).toEqual({ v: 2 });
      await worker.delete(key);
      let seen: unknown = { v: 2 };
      for (let i = 0; i < 50 && seen !== undefined; i++) {
        await new Promise((r) => setTimeout(r, 20));
        seen = await web.get(key);
      }
      expect(seen).toBeUndefined();
    } finally {
      await web.close();
      await worker.close();
    }
  });

  it('a slow fill on one server does not store a value a delete on another server made stale', async () => {
    const [writer, reader, third] = [webServerCache(), webServerCache(), webServerCache()];
    await new Promise((r) => setTimeout(r, 200)); // all subscribed
    const key = `race:${randomBytes(4).toString('hex')}`;
    try {
      let row = 'v1';
      let readRow!: () => void;
      const loadStarted = new Promise<void>((r) => {
        readRow = r;
      });
      const slow = cached(reader, key, async () => {
        const seen = row;
        readRow();
        await new Promise((r) => setTimeout(r, 300));
        return seen;
      });
      await loadStarted;
      row = 'v2';
      await writer.delete(key); // on another web server
      expect(await slow).toBe('v1');
      // Neither the slow server, nor the writer, nor a third server reads the old value from L1 or L2.
      for (const c of [reader, writer, third]) expect(await c.get(key)).toBeUndefined();
      expect(await cached(third, key, async () => row)).toBe('v2');
      expect(await reader.get(key)).toBe('v2');
    } finally {
      for (const c of [writer, reader, third]) await c.close();
    }
  });

  it('a delete reaches L2 while the circuit breaker is open, so no other server refills the old value', async () => {
    const server = async () => {
      const redis = connectLone(cacheTierOptions);
      if (redis.status !== 'ready') await once(redis, 'ready');
      return createTwoLevelCache({
        redis,
        subscriber: connectLone(subscriberOptions),
        maxEntries: 100,
        defaultTtlSeconds: 60,
      });
    };
    const [a, b] = [await server(), await server()];
    await new Promise((r) => setTimeout(r, 200)); // both subscribed
    const key = `breaker:${randomBytes(4).toString('hex')}`;
    try {
      await a.set(key, { v: 1 });
      expect(await b.get(key)).toEqual({ v: 1 }); // in b's L1 now
      // Redis stalls for 300 ms: a's next L2 read times out (100 ms) and opens a's breaker for 5 s.
      await redisCommand('127.0.0.1', lone?.port ?? 0, 'CLIENT', 'PAUSE', '300', 'ALL');
      expect(await a.get(`${key}:other`)).toBeUndefined();
      await new Promise((r) => setTimeout(r, 400));
      await a.delete(key);
      await new Promise((r) => setTimeout(r, 100)); // b hears of it
      expect(await b.get(key)).toBeUndefined(); // not refilled from L2
      expect(await a.get(key)).toBeUndefined();
    } finally {
      for (const c of [a, b]) await c.close();
    }
  });

  it('shares L2 with a web server of the version before (Bentocache 1.x) during a rolling deploy', async () => {
    const current = webServerCache();
    const redis = connect();
    const previous = new BentoCache({
      default: 'l2',
      prefix: 'bentocache',
      ttl: '60s',
      stores: { l2: bentostore().useL2Layer(redisDriver({ connection: redis })) },
    });
    const key = `compat:${randomBytes(4).toString('hex')}`;
    try {
      // What the earlier version stored ({ v, exp } in Bentocache's entry) is read by this one, and back.
      await previous.set({ key: `${key}:old`, value: { v: { n: 1 }, exp: Date.now() + 60_000 }, ttl: '60s' });
      expect(await current.get(`${key}:old`)).toEqual({ n: 1 });
      await current.set(`${key}:new`, { n: 2 });
      expect(await previous.get({ key: `${key}:new` })).toMatchObject({ v: { n: 2 } });
      // This version's delete removes what either stored.
      await current.delete(`${key}:old`, `${key}:new`);
      expect(await previous.get({ key: `${key}:old` })).toBeUndefined();
      expect(await previous.get({ key: `${key}:new` })).toBeUndefined();
    } finally {
      await current.close();
      await previous.disconnectAll();
    }
  });

  it('a miss and its fill take two round trips: one MGET (value and delete count), one checked store', async () => {
    const redis = connectLone(cacheTierOptions);
    if (redis.status !== 'ready') await once(redis, 'ready');
    const cache = createTwoLevelCache({
      redis,
      subscriber: connectLone(subscriberOptions),
      maxEntries: 100,
      defaultTtlSeconds: 60,
    });
    const key = `trips:${randomBytes(4).toString('hex')}`;
    try {
      await new Promise((r) => setTimeout(r, 100)); // subscribed
      await redisCommand('127.0.0.1', lone?.port ?? 0, 'CONFIG', 'RESETSTAT');
      expect(await cached(cache, key, async () => 'loaded')).toBe('loaded');
      const stats = String(await redisCommand('127.0.0.1', lone?.port ?? 0, 'INFO', 'commandstats'));
      const calls = Object.fromEntries(
        [...stats.matchAll(/cmdstat_(\w+):calls=(\d+)/g)].map((m) => [m[1], Number(m[2])]),
      );
      // The script's own GET and SET run inside Redis (counted too); the client sent an MGET and one script.
      expect(calls.mget).toBe(1);
      expect((calls.evalsha ?? 0) + (calls.eval ?? 0)).toBe(1);
      expect(calls.get ?? 0).toBe(1);
      expect(calls.set ?? 0).toBe(1);
      expect(await cache.get(key)).toBe('loaded'); // from L1 now: no round trip
    } finally {
      await cache.close();
    }
  });

  it('keeps answering (as misses) when the cache Redis is unreachable, within its time limit', async () => {
    const dead = createTwoLevelCache({
      redis: connectRedis({ host: '127.0.0.1', port: 1 }, cacheTierOptions),
      subscriber: connectRedis({ host: '127.0.0.1', port: 1 }, subscriberOptions),
      maxEntries: 10,
      defaultTtlSeconds: 60,
    });
    try {
      // Each call returns at once: no offline queue, and the circuit breaker skips L2 after its first failure.
      for (let i = 0; i < 20; i++) {
        const started = performance.now();
        expect(await dead.get(`nothing-${i}`)).toBeUndefined();
        await dead.set(`k-${i}`, { i });
        expect(performance.now() - started).toBeLessThan(100);
      }
    } finally {
      await dead.close();
    }
  });
});

describe('sessions in Redis with no replica to WAIT for', () => {
  it('a write that waits for a replica holds up no read, and the writes after it do not wait', async () => {
    const unreplicated: string[] = [];
    const store = createRedisSessionStore(connectLone(), 3600, {
      writer: connectLone(),
      waitMs: 400,
      skipWaitMs: 1500,
      onUnreplicated: (op) => unreplicated.push(op),
    });
    const existing = await store.create('user_wait_a');
    expect(unreplicated).toEqual(['create']); // it waited 400 ms and no replica answered
    // The window has begun: these writes stand on the master alone without waiting.
    const started = performance.now();
    const second = await store.create('user_wait_b');
    await store.update(second.id, { k: 'v' });
    expect(performance.now() - started).toBeLessThan(150);
    expect(unreplicated).toEqual(['create']);
    // After the window, a write waits again (a returning replica would be seen); reads meanwhile answer at once.
    await new Promise((r) => setTimeout(r, 1600));
    const waiting = store.delete(second.id);
    const readStarted = performance.now();
    expect((await store.get(existing.id))?.userId).toBe('user_wait_a');
    expect(performance.now() - readStarted).toBeLessThan(150);
    await waiting;
    expect(unreplicated).toEqual(['create', 'delete']);
    expect(await store.get(second.id)).toBeNull();
  });

  it('concurrent writes share a WAIT: ten take two waits, not ten', async () => {
    const unreplicated: string[] = [];
    // skipWaitMs 0: every write waits, to see the waits shared rather than skipped.
    const store = createRedisSessionStore(connectLone(), 3600, {
      writer: connectLone(),
      waitMs: 300,
      skipWaitMs: 0,
      onUnreplicated: (op) => unreplicated.push(op),
    });
    await store.create('user_wait_warm'); // connected
    unreplicated.length = 0;
    const started = performance.now();
    const sessions = await Promise.all(Array.from({ length: 10 }, (_, i) => store.create(`user_wait_${i}`)));
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(900); // one after another: 3 s
    expect(unreplicated).toHaveLength(10);
    for (const s of sessions) expect((await store.get(s.id))?.userId).toBe(s.userId);
  });

  it('on one connection a WAIT holds up the reads behind it: why writes get their own', async () => {
    const one = connectLone();
    const store = createRedisSessionStore(one, 3600, { waitMs: 400 });
    const existing = await store.create('user_wait_c');
    await new Promise((r) => setTimeout(r, 1100)); // past the default 1 s window: the next write waits
    const waiting = store.update(existing.id, { k: 'v' });
    await new Promise((r) => setTimeout(r, 20)); // its SET done, its WAIT sent
    const readStarted = performance.now();
    await store.get(existing.id);
    expect(performance.now() - readStarted).toBeGreaterThan(250);
    await waiting;
  });
});
