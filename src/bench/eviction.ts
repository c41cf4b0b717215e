import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { redisCommand } from '../cluster/components/redis/server.ts';
import { startProcess, stopProcess, waitUntil } from '../cluster/process.ts';
import { type EvictionPolicy, evictionOrder } from '../platform/cache/eviction.ts';
import { freePort } from './processes.ts';
import { mulberry32, zipf } from './seed.ts';

/** A trace of key numbers, 0 … keys-1. */
export type Trace = Int32Array;

/** The celebrity scenario's skew: Zipf with s = 1.2 over the key space. */
export function zipfTrace(keys: number, requests: number, s = 1.2, seed = 7): Trace {
  const next = zipf(keys, s, mulberry32(seed));
  return Int32Array.from({ length: requests }, () => next());
}

/**
 * Scan-heavy: Zipf (s = 0.9) reads, interrupted by sequential scans over the
 * whole key space (a report, a crawler, a feed rebuild) that make up `scanShare`.
 */
export function scanTrace(keys: number, requests: number, scanShare = 0.3, seed = 11): Trace {
  const random = mulberry32(seed);
  const hot = zipf(keys, 0.9, random);
  const scanLength = Math.max(1, Math.round(keys / 10));
  // A scan starts with this chance per request, so that scans make up `scanShare` of the trace.
  const startChance = scanShare / (scanLength * (1 - scanShare));
  const out = new Int32Array(requests);
  let cursor = 0; // scans walk the key space from the cold end, each one on from where the last stopped
  let left = 0;
  for (let i = 0; i < requests; i++) {
    if (left === 0 && random() < startChance) left = scanLength;
    if (left > 0) {
      out[i] = keys - 1 - (cursor % keys);
      cursor++;
      left--;
    } else out[i] = hot();
  }
  return out;
}

/** Hit ratio of an in-process cache of `capacity` keys with one of the project's eviction orders. */
export function simulateOrder(policy: EvictionPolicy, capacity: number, trace: Trace): number {
  const order = evictionOrder(policy);
  const present = new Set<number>();
  let hits = 0;
  for (const k of trace) {
    const key = String(k);
    if (present.has(k)) {
      hits++;
      order.touch(key);
      continue;
    }
    if (present.size >= capacity) {
      const victim = order.victim();
      if (victim !== undefined) {
        order.remove(victim);
        present.delete(Number(victim));
      }
    }
    present.add(k);
    order.add(key);
  }
  return hits / trace.length;
}

/** A count-min sketch of 4-bit-ish counters with periodic halving (TinyLFU's frequency estimate). */
class FrequencySketch {
  readonly #rows: Uint8Array[];
  readonly #width: number;
  #additions = 0;
  readonly #resetAt: number;
  constructor(capacity: number) {
    this.#width = Math.max(64, 2 ** Math.ceil(Math.log2(capacity * 4)));
    this.#rows = Array.from({ length: 4 }, () => new Uint8Array(this.#width));
    this.#resetAt = capacity * 10;
  }
  #index(key: number, row: number): number {
    let h = Math.imul(key ^ (row * 0x9e3779b9), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) & (this.#width - 1);
  }
  add(key: number): void {
    for (let r = 0; r < 4; r++) {
      const row = this.#rows[r] as Uint8Array;
      const i = this.#index(key, r);
      if ((row[i] as number) < 15) row[i] = (row[i] as number) + 1;
    }
    if (++this.#additions >= this.#resetAt) {
      for (const row of this.#rows) for (let i = 0; i < row.length; i++) row[i] = (row[i] as number) >> 1;
      this.#additions = 0;
    }
  }
  estimate(key: number): number {
    let min = 15;
    for (let r = 0; r < 4; r++) min = Math.min(min, (this.#rows[r] as Uint8Array)[this.#index(key, r)] as number);
    return min;
  }
}

/** An LRU list over a Set's insertion order. */
class Lru {
  readonly keys = new Set<number>();
  touch(k: number): void {
    this.keys.delete(k);
    this.keys.add(k);
  }
  oldest(): number | undefined {
    return this.keys.values().next().value;
  }
}

/**
 * W-TinyLFU (Caffeine's policy): a 1 % LRU window admits every new key; a key
 * leaving the window enters the main cache (segmented LRU: 20 % probation,
 * 80 % protected) only if the frequency sketch says it is used more often
 * than the main cache's next victim. Scans pass through the window without
 * flushing the frequent keys.
 */
export function simulateTinyLfu(capacity: number, trace: Trace): number {
  const windowSize = Math.max(1, Math.round(capacity * 0.01));
  const mainSize = Math.max(1, capacity - windowSize);
  const protectedSize = Math.round(mainSize * 0.8);
  const sketch = new FrequencySketch(capacity);
  const window = new Lru();
  const probation = new Lru();
  const protectedSeg = new Lru();
  let hits = 0;
  for (const k of trace) {
    sketch.add(k);
    if (window.keys.has(k)) {
      hits++;
      window.touch(k);
      continue;
    }
    if (protectedSeg.keys.has(k)) {
      hits++;
      protectedSeg.touch(k);
      continue;
    }
    if (probation.keys.has(k)) {
      hits++;
      probation.keys.delete(k);
      protectedSeg.touch(k);
      if (protectedSeg.keys.size > protectedSize) {
        const demoted = protectedSeg.oldest() as number;
        protectedSeg.keys.delete(demoted);
        probation.touch(demoted);
      }
      continue;
    }
    window.touch(k);
    if (window.keys.size <= windowSize) continue;
    const candidate = window.oldest() as number;
    window.keys.delete(candidate);
    if (probation.keys.size + protectedSeg.keys.size < mainSize) {
      probation.touch(candidate);
      continue;
    }
    const victim = probation.oldest() ?? (protectedSeg.oldest() as number);
    if (sketch.estimate(candidate) > sketch.estimate(victim)) {
      probation.keys.delete(victim);
      protectedSeg.keys.delete(victim);
      probation.touch(candidate);
    }
  }
  return hits / trace.length;
}

export interface EvictionRow {
  trace: string;
  sizePercent: number;
  capacity: number;
  hitRatio: Record<'lru' | 'lfu' | 'fifo' | 'w-tinylfu', number>;
}

/** Every in-process policy on both traces at 1 %, 5 % and 20 % of the key space. */
export function compareInProcess(keys: number, requests: number): EvictionRow[] {
  const traces: [string, Trace][] = [
    ['zipf 1.2 (celebrity)', zipfTrace(keys, requests)],
    ['scan-heavy', scanTrace(keys, requests)],
  ];
  const rows: EvictionRow[] = [];
  for (const [name, trace] of traces) {
    for (const pct of [1, 5, 20]) {
      const capacity = Math.max(1, Math.round((keys * pct) / 100));
      rows.push({
        trace: name,
        sizePercent: pct,
        capacity,
        hitRatio: {
          lru: simulateOrder('lru', capacity, trace),
          lfu: simulateOrder('lfu', capacity, trace),
          fifo: simulateOrder('fifo', capacity, trace),
          'w-tinylfu': simulateTinyLfu(capacity, trace),
        },
      });
    }
  }
  return rows;
}

export interface RedisEvictionRow {
  policy: 'allkeys-lru' | 'allkeys-lfu';
  trace: string;
  maxmemory: string;
  hitRatio: number;
  evictedKeys: number;
}

// One request of a cache-aside client in one round trip: a hit, or a miss that fills.
const getOrFill = `local v = redis.call('GET', KEYS[1])
if v then return 1 end
redis.call('SET', KEYS[1], ARGV[1])
return 0`;

/**
 * A real Redis 7 with `maxmemory` below the working set, under each policy:
 * every request is GET, and a miss is filled with a value of `valueBytes`.
 * Hits and evictions come from the server's own INFO counters.
 */
export async function compareRedis(opts: {
  keys: number;
  requests: number;
  valueBytes: number;
  maxmemory: string;
}): Promise<RedisEvictionRow[]> {
  const rows: RedisEvictionRow[] = [];
  const value = 'x'.repeat(opts.valueBytes);
  for (const [traceName, trace] of [
    ['zipf 1.2 (celebrity)', zipfTrace(opts.keys, opts.requests)],
    ['scan-heavy', scanTrace(opts.keys, opts.requests)],
  ] as const) {
    for (const policy of ['allkeys-lru', 'allkeys-lfu'] as const) {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'scaleout-evict-'));
      const port = await freePort();
      const server = startProcess({
        command: '/usr/bin/redis-server',
        args: [
          '--bind',
          '127.0.0.1',
          '--port',
          String(port),
          '--save',
          '',
          '--appendonly',
          'no',
          '--maxmemory',
          opts.maxmemory,
          '--maxmemory-policy',
          policy,
          '--dir',
          dir,
        ],
        log: path.join(dir, 'redis.log'),
        cwd: dir,
      });
      const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 3 });
      redis.on('error', () => {});
      try {
        await waitUntil(
          async () => (await redisCommand('127.0.0.1', port, 'PING')) === 'PONG',
          10_000,
          'redis for the eviction benchmark',
        );
        await redis.connect();
        const sha = (await redis.script('LOAD', getOrFill)) as string;
        for (let i = 0; i < trace.length; i += 1000) {
          const pipeline = redis.pipeline();
          for (const k of trace.subarray(i, i + 1000)) pipeline.evalsha(sha, 1, `k:${k}`, value);
          await pipeline.exec();
        }
        const info = await redis.info('stats');
        const stat = (name: string) => Number(new RegExp(`${name}:(\\d+)`).exec(info)?.[1] ?? 0);
        const hits = stat('keyspace_hits');
        const misses = stat('keyspace_misses');
        rows.push({
          policy,
          trace: traceName,
          maxmemory: opts.maxmemory,
          hitRatio: hits / Math.max(1, hits + misses),
          evictedKeys: stat('evicted_keys'),
        });
      } finally {
        redis.disconnect();
        await stopProcess(server.pid);
        await rm(dir, { recursive: true, force: true });
      }
    }
  }
  return rows;
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

export function evictionTable(rows: EvictionRow[]): string {
  return [
    '| trace | cache size (% of keys) | LRU | LFU | FIFO | W-TinyLFU |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.trace} | ${r.sizePercent} % (${r.capacity}) | ${pct(r.hitRatio.lru)} | ${pct(r.hitRatio.lfu)} | ${pct(r.hitRatio.fifo)} | ${pct(r.hitRatio['w-tinylfu'])} |`,
    ),
  ].join('\n');
}

export function redisEvictionTable(rows: RedisEvictionRow[]): string {
  return [
    '| trace | policy | maxmemory | hit ratio | evicted keys |',
    '|---|---|---:|---:|---:|',
    ...rows.map((r) => `| ${r.trace} | ${r.policy} | ${r.maxmemory} | ${pct(r.hitRatio)} | ${r.evictedKeys} |`),
  ].join('\n');
}
