import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createDrain } from '../../src/server/drain.ts';
import { healthRoutes } from '../../src/server/health.ts';

const apps: ReturnType<typeof Fastify>[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
});

async function server(o = { balancerChecks: 2, quietMs: 300, marginMs: 50, maxWaitMs: 3000 }) {
  const drain = createDrain(o);
  const app = Fastify();
  drain.install(app);
  await app.register(healthRoutes([], 'v1', drain));
  let release = () => {};
  app.get('/slow', async () => {
    await new Promise<void>((r) => {
      release = r;
    });
    return { ok: true };
  });
  app.get('/fast', async () => ({ ok: true }));
  apps.push(app);
  return { app, drain, release: () => release() };
}

describe('graceful shutdown: drain before close', () => {
  it('fails /readyz once draining, and lets go after the balancer has seen enough failing checks', async () => {
    const { app, drain } = await server();
    expect((await app.inject('/readyz')).statusCode).toBe(200);
    const done = drain.begin();
    const check = await app.inject('/readyz');
    expect(check.statusCode).toBe(503);
    expect(check.json()).toMatchObject({ status: 'draining' });
    expect((await app.inject('/healthz')).statusCode).toBe(200);
    // Traffic keeps coming (the balancer has not marked it down yet): only the second failing check ends the wait.
    const keepBusy = setInterval(() => void app.inject('/fast'), 20);
    await new Promise((r) => setTimeout(r, 100));
    await app.inject('/readyz');
    const result = await done;
    clearInterval(keepBusy);
    expect(result.reason).toBe('checks');
  });

  it('with no balancer checking, waits until nothing is in flight and nothing came for quietMs', async () => {
    const { app, drain, release } = await server();
    const slow = app.inject('/slow');
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    const done = drain.begin();
    await new Promise((r) => setTimeout(r, 500));
    release();
    expect((await slow).statusCode).toBe(200);
    const result = await done;
    expect(result.reason).toBe('quiet');
    expect(Date.now() - started).toBeGreaterThanOrEqual(500 + 300 - 30);
  });

  it('gives up after maxWaitMs', async () => {
    const { app, drain } = await server({ balancerChecks: 2, quietMs: 10_000, marginMs: 50, maxWaitMs: 400 });
    const slow = app.inject('/slow');
    await new Promise((r) => setTimeout(r, 50));
    expect((await drain.begin()).reason).toBe('timeout');
    void slow;
  });
});
