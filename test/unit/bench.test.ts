import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../../src/bench/load.ts';
import { routeOf } from '../../src/bench/overload.ts';
import { parseDuration } from '../../src/bench/run.ts';
import { followGraph, mulberry32, zipf } from '../../src/bench/seed.ts';
import { describeStalls, summarizeStalls } from '../../src/bench/stall-trace.ts';

describe('percentiles', () => {
  it('match known inputs: 1..1000 ms', () => {
    const h = new LatencyHistogram();
    for (let ms = 1; ms <= 1000; ms++) h.record(ms * 1000);
    const s = h.summary();
    // HDR keeps 3 significant digits, so each value is within 0.1 %.
    expect(s.p50).toBeCloseTo(500, -0.5);
    expect(s.p90).toBeCloseTo(900, -0.5);
    expect(s.p99).toBeCloseTo(990, -0.5);
    expect(s.p999).toBeCloseTo(999, -0.5);
    expect(s.max).toBeCloseTo(1000, -0.5);
    expect(Math.abs(s.p99 - 990) / 990).toBeLessThan(0.001);
  });

  it('a single slow request shows in the tail, not in the median', () => {
    const h = new LatencyHistogram();
    for (let i = 0; i < 999; i++) h.record(2000);
    h.record(3_000_000);
    const s = h.summary();
    expect(s.p50).toBeCloseTo(2, 1);
    expect(s.p99).toBeCloseTo(2, 1);
    expect(s.max).toBeGreaterThan(2990);
  });
});

describe('durations', () => {
  it('parses 30s, 2m, 500ms and plain seconds', () => {
    expect(parseDuration('30s')).toBe(30);
    expect(parseDuration('2m')).toBe(120);
    expect(parseDuration('500ms')).toBe(0.5);
    expect(parseDuration('45')).toBe(45);
    expect(() => parseDuration('soon')).toThrow();
  });
});

describe('the seeded graph', () => {
  it('is the same for the same seed', () => {
    expect(followGraph(200, 50, mulberry32(1))).toEqual(followGraph(200, 50, mulberry32(1)));
    expect(followGraph(200, 50, mulberry32(1))).not.toEqual(followGraph(200, 50, mulberry32(2)));
  });

  it('has a celebrity followed by most, a long tail, no self-follows and no repeats', () => {
    const users = 500;
    const pairs = followGraph(users, 50, mulberry32(42));
    const followers = new Map<number, number>();
    for (const [a, b] of pairs) {
      expect(a).not.toBe(b);
      followers.set(b, (followers.get(b) ?? 0) + 1);
    }
    expect(new Set(pairs.map(([a, b]) => `${a}>${b}`)).size).toBe(pairs.length);
    expect(followers.get(1)).toBeGreaterThan(0.8 * users);
    const counts = [...followers.values()].sort((x, y) => y - x);
    const median = counts[Math.floor(counts.length / 2)] as number;
    expect(counts[1] as number).toBeGreaterThan(5 * median);
  });

  it('zipf favours low ranks', () => {
    const draw = zipf(100, 1.2, mulberry32(5));
    const hits = new Array(100).fill(0);
    for (let i = 0; i < 20_000; i++) hits[draw()]++;
    expect(hits[0]).toBeGreaterThan(hits[1]);
    expect(hits[1]).toBeGreaterThan(hits[10]);
    expect(hits[0]).toBeGreaterThan(20 * hits[99]);
  });
});

describe("the soak's trace of the primary's stalls", () => {
  it('counts what busy backends waited for, leaving out the CPU and their clients; the worst sample and lags', () => {
    const m = summarizeStalls([
      { t: 0, waits: { CPU: 3, 'Client:ClientRead': 1 }, lagMs: { 'pg-2': { write: 0.2, flush: 0.5 } }, ioStallMs: 1 },
      {
        t: 100,
        waits: { 'IPC:SyncRep': 4, 'Lock:transactionid': 1, CPU: 1 },
        lagMs: { 'pg-2': { write: 3, flush: 640 } },
      },
      { t: 200, waits: { 'IPC:SyncRep': 2 }, lagMs: { 'pg-3': { write: 1, flush: 12 } }, ioStallMs: 250 },
    ]);
    expect(m).toEqual({
      samples: 3,
      waitingSamples: 2,
      worst: { n: 5, waits: { 'IPC:SyncRep': 4, 'Lock:transactionid': 1 }, t: 100 },
      byWait: { 'IPC:SyncRep': 6, 'Lock:transactionid': 1 },
      maxFlushLagMs: 640,
      ioStallMs: 251,
    });
    expect(describeStalls(m)).toBe(
      '2 of 3 samples with a backend waiting, the most 5 at once (IPC:SyncRep 4, Lock:transactionid 1); by wait: IPC:SyncRep 6, Lock:transactionid 1; standby flush lag ≤ 640 ms; I/O stall 251 ms',
    );
  });
});

describe("the overload run's routes in the balancer's log", () => {
  it('names a route by its method and path, a member of a collection as :id, without the query', () => {
    expect(routeOf('GET', '/api/v1/feed?cursor=abc')).toBe('GET /api/v1/feed');
    expect(routeOf('PUT', '/api/v1/photos/0193e1c2-aa/like')).toBe('PUT /api/v1/photos/:id/like');
    expect(routeOf('GET', '/api/v1/users/s1_user_42/photos')).toBe('GET /api/v1/users/:id/photos');
    expect(routeOf('POST', '/api/v1/photos')).toBe('POST /api/v1/photos');
  });
});
