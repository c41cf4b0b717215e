import { createServer, type Server } from 'node:http';
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
    expect(result.errors).toEqual({ http_503: 10 });
    expect(result.latencyMs.p50).toBeLessThan(100);
  });
});
