import { describe, expect, it } from 'vitest';
import { classOf } from '../../src/server/admission.ts';
import { Client, password, uniqueName, useApp } from '../support/app.ts';

// A low bound, so that a test can push this process's event loop past it: costly writes shed at 20 ms of
// delay, other writes at 40, reads at 80.
const app = useApp({ shedEventLoopDelayMs: 20 });

/** Keeps the event loop busy `busyMs` out of every 100 ms until stopped. */
function hog(busyMs: number): () => void {
  const timer = setInterval(() => {
    const until = Date.now() + busyMs;
    while (Date.now() < until) {
      // busy
    }
  }, 100);
  return () => clearInterval(timer);
}

describe('load shedding in the web server', () => {
  it('classes requests: sign-up, log-in and upload are costly; other writes, then reads', () => {
    expect(classOf('POST', '/api/v1/users')).toBe('costly');
    expect(classOf('POST', '/api/v1/sessions')).toBe('costly');
    expect(classOf('POST', '/api/v1/photos')).toBe('costly');
    expect(classOf('POST', '/signup?x=1')).toBe('costly');
    expect(classOf('PUT', '/api/v1/photos/p/like')).toBe('write');
    expect(classOf('DELETE', '/api/v1/sessions/current')).toBe('write');
    expect(classOf('GET', '/api/v1/feed')).toBe('read');
  });

  it('a sustained event-loop delay sheds sign-ups with 503 and Retry-After, never health checks; it recovers', async () => {
    const c = new Client(app.url);
    const stop = hog(90);
    let shed: Awaited<ReturnType<Client['request']>> | undefined;
    try {
      // The delay must stay above the bound for two samples (a second) before anything is shed.
      for (const end = Date.now() + 5000; Date.now() < end; ) {
        const res = await c.request('POST', '/api/v1/users', { json: { username: uniqueName(), password } });
        if (res.status === 503) {
          shed = res;
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(shed?.status).toBe(503);
      expect(shed?.headers.get('retry-after')).toBe('1');
      expect(shed?.body.error.code).toBe('OVERLOADED');
      expect((await c.request('GET', '/healthz')).status).toBe(200);
      expect((await c.request('GET', '/readyz')).status).toBe(200);
    } finally {
      stop();
    }
    // Once the loop is on time again (two samples), sign-ups are served.
    await new Promise((r) => setTimeout(r, 1500));
    const username = uniqueName();
    expect((await c.request('POST', '/api/v1/users', { json: { username, password } })).status).toBe(201);
    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/scaleout_requests_shed_total\{class="costly",reason="event-loop"\} [1-9]/);
  });
});
