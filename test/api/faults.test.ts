import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Services } from '../../src/app/routes/context.ts';
import { createMemoryIdempotencyStore } from '../../src/platform/idempotency/memory.ts';
import { createLogger } from '../../src/platform/observability/logger.ts';
import { createMetrics } from '../../src/platform/observability/metrics.ts';
import { createMemorySessionStore } from '../../src/platform/sessions/memory.ts';
import { buildServer } from '../../src/server/app.ts';

// Every service call fails the way a broken database does, with internals in the message.
const internal = 'relation "users" does not exist at /srv/db/pool.ts:42 password=hunter2';
const failing = new Proxy({} as Services, {
  get: () =>
    new Proxy(
      {},
      {
        get: () => async () => {
          throw new Error(internal);
        },
      },
    ),
});

let server: FastifyInstance;
beforeAll(async () => {
  server = await buildServer({
    services: failing,
    sessions: createMemorySessionStore(60),
    idempotency: createMemoryIdempotencyStore(),
    settings: {
      uploadMaxBytes: 1000,
    },
    logger: createLogger('silent'),
    metrics: createMetrics(),
    readiness: [{ name: 'db', check: async () => Promise.reject(new Error(internal)) }],
    trustProxy: false,
    secureCookies: 'never',
    secret: 'a test secret that is long enough to sign',
    // inject() sends Host: localhost:80, and this server never listens.
    allowedHosts: ['localhost:80'],
  });
});
afterAll(async () => server.close());

describe('when a tier fails', () => {
  it('the API answers 500 with a generic message and the request id', async () => {
    const res = await server.inject({
      method: 'GET',
      url: '/api/v1/users/alice',
      headers: { 'x-request-id': 'fault-1' },
    });
    expect(res.statusCode).toBe(500);
    const body = res.json();
    expect(body).toEqual({ error: { code: 'INTERNAL', message: expect.any(String), requestId: 'fault-1' } });
    expect(res.body).not.toContain('relation');
    expect(res.body).not.toContain('hunter2');
  });

  it('pages show a generic error page with the request id', async () => {
    const res = await server.inject({
      method: 'GET',
      url: '/u/alice',
      headers: { accept: 'text/html', 'x-request-id': 'fault-2' },
    });
    expect(res.statusCode).toBe(500);
    expect(res.headers['content-type']).toContain('text/html');
    expect(res.body).toContain('fault-2');
    expect(res.body).not.toContain('relation');
  });

  it('bad input is still a 4xx, not a 500', async () => {
    const res = await server.inject({
      method: 'POST',
      url: '/api/v1/users',
      payload: { username: 'A', password: 'x' },
    });
    expect(res.statusCode).toBe(400);
  });

  it('/readyz says not ready with 503, /healthz still answers', async () => {
    const ready = await server.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({ status: 'not ready', checks: { db: 'failing' } });
    expect(ready.body).not.toContain('relation');
    expect((await server.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});
