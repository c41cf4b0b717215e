import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { healthRoutes } from '../../src/server/health.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('readiness answers from probes made in the background', () => {
  it('a busy dependency does not make /readyz wait, a failed one turns it 503 by the next check', async () => {
    let mode: 'ok' | 'slow' | 'down' = 'ok';
    const app = Fastify({ logger: false });
    await app.register(
      healthRoutes([
        {
          name: 'db',
          check: async () => {
            if (mode === 'slow') await sleep(1500);
            if (mode === 'down') throw new Error('connection refused');
          },
        },
      ]),
    );
    try {
      // The first check waits for its probe.
      expect((await app.inject('/readyz')).statusCode).toBe(200);
      // Slow (1.5 s, under the 2 s limit): answered at once from the last result.
      mode = 'slow';
      await sleep(300);
      const started = Date.now();
      expect((await app.inject('/readyz')).statusCode).toBe(200);
      expect((await app.inject('/readyz')).statusCode).toBe(200);
      expect(Date.now() - started).toBeLessThan(200);
      await sleep(1600);
      // Down: the check that starts the failing probe still says ready; the next one, after it, does not.
      mode = 'down';
      await sleep(300);
      expect((await app.inject('/readyz')).statusCode).toBe(200);
      await sleep(50);
      const after = await app.inject('/readyz');
      expect(after.statusCode).toBe(503);
      expect(after.json()).toEqual({ status: 'not ready', checks: { db: 'failing' } });
    } finally {
      await app.close();
    }
  });
});
