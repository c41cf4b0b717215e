import type { FastifyInstance } from 'fastify';

/**
 * Graceful shutdown, as Kubernetes orders it (readiness first, then the
 * stop): once draining, /readyz answers 503; the server waits until the
 * balancer has taken it out of rotation, then closes.
 *
 * "Taken out" is seen from here, without asking the balancer: it has
 * answered `balancerChecks` (HAProxy's `fall`) health checks with 503 in a
 * row, after which HAProxy marks it down and sends it nothing new; or nothing
 * but health checks has come for `quietMs` and nothing is in flight (an
 * orchestrator that drained it through the runtime API first, or no balancer
 * at all). `maxWaitMs` bounds the wait whatever happens.
 */
export interface DrainOptions {
  balancerChecks: number;
  quietMs: number;
  /** Margin after the last failing check, for a request HAProxy dispatched just before it. */
  marginMs: number;
  maxWaitMs: number;
}

export const defaultDrain: DrainOptions = { balancerChecks: 2, quietMs: 1000, marginMs: 250, maxWaitMs: 15_000 };

const healthPaths = new Set(['/readyz', '/healthz']);

export interface Drain {
  readonly draining: boolean;
  /** A /readyz answered "not ready" because of the drain. */
  failedCheck(): void;
  /** Starts the drain; resolves when the balancer has let go (see DrainOptions). */
  begin(): Promise<{ reason: 'checks' | 'quiet' | 'timeout'; waitedMs: number; inFlight: number }>;
  /** Counts requests in flight and the time of the last one (health checks aside). */
  install(app: FastifyInstance): void;
}

export function createDrain(o: DrainOptions = defaultDrain): Drain {
  let draining = false;
  let failedChecks = 0;
  let lastFailedCheck = 0;
  let inFlight = 0;
  let lastRequest = 0;
  return {
    get draining() {
      return draining;
    },
    failedCheck() {
      failedChecks++;
      lastFailedCheck = Date.now();
    },
    install(app) {
      app.addHook('onRequest', async (request) => {
        if (healthPaths.has(request.url)) return;
        inFlight++;
        lastRequest = Date.now();
      });
      app.addHook('onResponse', async (request) => {
        if (healthPaths.has(request.url)) return;
        inFlight--;
        lastRequest = Date.now();
      });
    },
    async begin() {
      const started = Date.now();
      draining = true;
      lastRequest = Math.max(lastRequest, started);
      for (;;) {
        const now = Date.now();
        if (failedChecks >= o.balancerChecks && now - lastFailedCheck >= o.marginMs)
          return { reason: 'checks', waitedMs: now - started, inFlight };
        if (inFlight === 0 && now - lastRequest >= o.quietMs)
          return { reason: 'quiet', waitedMs: now - started, inFlight };
        if (now - started >= o.maxWaitMs) return { reason: 'timeout', waitedMs: now - started, inFlight };
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}
