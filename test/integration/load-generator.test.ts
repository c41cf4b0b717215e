import { createServer, type IncomingMessage, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedLoop, openLoop } from '../../src/bench/load.ts';

// A server that answers one request at a time, each after 20 ms: it can serve 50 req/s.
let server: Server;
let origin: string;
beforeAll(async () => {
  let queue = Promise.resolve();
  server = createServer((req, res) => {
    queue = queue.then(
      () =>
        new Promise<void>((done) =>
          setTimeout(() => {
            res.statusCode = req.url === '/fail' ? 503 : 200;
            res.end('ok');
            done();
          }, 20),
        ),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('load generator', () => {
  it('open loop counts queueing delay from the scheduled time (no coordinated omission)', async () => {
    // 100 req/s for 1.5 s against 50 req/s of capacity: the backlog grows to
    // ~75 requests, so the last ones wait well over a second.
    const open = await openLoop({ origin, rate: 100, seconds: 1.5, connections: 8, next: () => ({ path: '/' }) });
    expect(open.completed).toBe(150);
    expect(open.latencyMs.p99).toBeGreaterThan(1000);
    expect(open.latencyMs.p50).toBeGreaterThan(300);

    // A closed loop with one connection never queues: it only sees the 20 ms service time.
    const closed = await closedLoop({ origin, seconds: 1, connections: 1, next: () => ({ path: '/' }) });
    expect(closed.latencyMs.p99).toBeLessThan(100);
    expect(closed.throughput).toBeGreaterThan(30);
    expect(closed.throughput).toBeLessThanOrEqual(50);
  });

  it('sends at the asked rate when the server keeps up, and counts errors by type', async () => {
    const result = await openLoop({
      origin,
      rate: 20,
      seconds: 1,
      connections: 4,
      next: (i) => ({ path: i % 2 ? '/fail' : '/' }),
    });
    expect(result.completed).toBe(10);
    // A 503 without Retry-After is not the shedding this site does: counted apart.
    expect(result.errors).toEqual({ http_503_no_retry_after: 10 });
    expect(result.latencyMs.p50).toBeLessThan(100);
  });
});

describe("the open loop's warm-up (as wrk2 calibrates before it records)", () => {
  // A server slow while cold: its first 30 requests take 300 ms each (side by side), the others 5 ms.
  const coldServer = async () => {
    let seen = 0;
    const s = createServer((_req, res) => {
      seen++;
      setTimeout(() => res.end('ok'), seen <= 30 ? 300 : 5);
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return {
      origin: `http://127.0.0.1:${(s.address() as { port: number }).port}`,
      seen: () => seen,
      close: () => new Promise<void>((r) => s.close(() => r())),
    };
  };

  it('sends the same load first and keeps its answers apart from the measured seconds', async () => {
    const cold = await coldServer();
    try {
      const r = await openLoop({
        origin: cold.origin,
        rate: 40,
        seconds: 1,
        warmUpSeconds: 1,
        connections: 16,
        next: () => ({ path: '/' }),
      });
      expect(cold.seen()).toBe(80);
      expect(r.sent).toBe(40);
      expect(r.completed).toBe(40);
      expect(r.servedLatencyMs.p99).toBeLessThan(150);
      expect(r.timeline.reduce((n, p) => n + p.ok, 0)).toBe(40);
      expect(r.warmUp).toMatchObject({ seconds: 1, sent: 40, completed: 40 });
      expect(r.warmUp?.servedLatencyMs.p99).toBeGreaterThanOrEqual(290);
    } finally {
      await cold.close();
    }
  });

  it('without it, the cold start is in the measured numbers', async () => {
    const cold = await coldServer();
    try {
      const r = await openLoop({
        origin: cold.origin,
        rate: 40,
        seconds: 1,
        connections: 16,
        next: () => ({ path: '/' }),
      });
      expect(r.warmUp).toBeUndefined();
      expect(r.sent).toBe(40);
      expect(r.servedLatencyMs.p99).toBeGreaterThanOrEqual(290);
    } finally {
      await cold.close();
    }
  });
});

describe('retries of writes with an Idempotency-Key', () => {
  // Each key's first attempt is cut off (the socket destroyed) or shed (503, Retry-After: 1); the next
  // succeeds. A request without a key always fails so.
  const seen = new Map<string, number>();
  let flaky: Server;
  let flakyOrigin: string;
  beforeAll(async () => {
    flaky = createServer((req: IncomingMessage, res) => {
      const key = String(req.headers['idempotency-key'] ?? '');
      const n = (seen.get(key) ?? 0) + 1;
      seen.set(key, n);
      const fail = n === 1 || !key;
      if (fail && req.url === '/reset') return req.socket.destroy();
      if (fail && req.url === '/shed') {
        res.writeHead(503, { 'retry-after': '1' });
        return res.end('{"error":{"code":"OVERLOADED"}}');
      }
      res.end('ok');
    });
    await new Promise<void>((r) => flaky.listen(0, '127.0.0.1', r));
    flakyOrigin = `http://127.0.0.1:${(flaky.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => flaky.close(() => r())));

  it('sends a write again with the same key after a reset or a 503, and never a write without a key', async () => {
    const paths = ['/reset', '/shed', '/reset'];
    const result = await openLoop({
      origin: flakyOrigin,
      rate: 10,
      seconds: 0.6,
      connections: 4,
      retry: { retries: 3, backoffMs: 50, maxMs: 10_000 },
      next: (i) => ({
        method: 'POST',
        path: paths[i % 3] as string,
        // The last two carry no key: sent once, their errors counted.
        headers: i < 4 ? { 'idempotency-key': `k${i}` } : undefined,
      }),
    });
    expect(result.sent).toBe(6);
    expect(result.completed).toBe(4);
    expect(result.retries).toBe(4);
    expect(Object.values(result.errors).reduce((a, b) => a + b, 0)).toBe(2);
    expect(result.errors.http_503).toBe(1);
    for (let i = 0; i < 4; i++) expect(seen.get(`k${i}`)).toBe(2);
    // The shed write waited for its Retry-After (about a second) before it was sent again.
    expect(result.latencyMs.max).toBeGreaterThan(400);
  });

  it('with reads on, sends a read shed with Retry-After again after it, and not one whose connection was reset', async () => {
    const reads = new Map<string, number>();
    const server = createServer((req, res) => {
      const n = (reads.get(req.url ?? '') ?? 0) + 1;
      reads.set(req.url ?? '', n);
      if (n === 1 && req.url?.startsWith('/reset')) return req.socket.destroy();
      if (n === 1 && req.url?.startsWith('/shed')) {
        res.writeHead(503, { 'retry-after': '1' });
        return res.end('{"error":{"code":"OVERLOADED"}}');
      }
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const result = await openLoop({
        origin,
        rate: 10,
        seconds: 0.4,
        connections: 4,
        retry: { retries: 3, backoffMs: 50, maxMs: 10_000, reads: true },
        next: (i) => ({ method: 'GET', path: i % 2 === 0 ? `/shed?${i}` : `/reset?${i}` }),
      });
      expect(result.sent).toBe(4);
      // The two shed reads were served the second time; the two reset ones failed once, not sent again.
      expect(result.retries).toBe(2);
      expect(result.completed).toBe(2);
      expect(reads.get('/shed?0')).toBe(2);
      expect(reads.get('/reset?1')).toBe(1);
      expect(Object.values(result.errors).reduce((a, b) => a + b, 0)).toBe(2);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('with a retry budget, sends again at most its share of what it sent, however much is shed', async () => {
    let answered = 0;
    const server = createServer((_req, res) => {
      answered++;
      res.writeHead(503, { 'retry-after': '0' });
      res.end('{"error":{"code":"OVERLOADED"}}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const result = await openLoop({
        origin,
        rate: 200,
        seconds: 1,
        connections: 16,
        retry: {
          retries: 5,
          backoffMs: 10,
          maxMs: 10_000,
          reads: true,
          budget: { ratio: 0.1, minPerSecond: 0, windowMs: 10_000 },
        },
        next: (i) => ({ method: 'GET', path: `/shed?${i}` }),
      });
      // Everything is shed: unbudgeted, each of the 200 would be sent 5 times more (1,000).
      expect(result.sent).toBe(200);
      expect(result.retries).toBeLessThanOrEqual(20);
      expect(result.retries).toBeGreaterThanOrEqual(15);
      // A request refused a retry ends there: nearly every one of them was.
      expect(result.retriesRefused).toBeGreaterThanOrEqual(190);
      expect(answered).toBe(200 + result.retries);
      expect(Object.values(result.errors).reduce((a, b) => a + b, 0)).toBe(200);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
