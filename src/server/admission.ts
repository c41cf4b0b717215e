import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';

/**
 * What a request costs, and so in which order requests are shed: costly
 * writes first (sign-up and log-in hash a password with scrypt, an upload
 * carries a file), then other writes, reads last (most are cache hits).
 */
export type RequestClass = 'read' | 'write' | 'costly';

/** The POSTs that cost most: sign-up and log-in (scrypt), uploads. The balancer's queue classes use the same list. */
export const costlyPostPaths = ['/api/v1/users', '/api/v1/sessions', '/api/v1/photos', '/signup', '/login', '/upload'];
const costlyPosts = new Set(costlyPostPaths);
/** Never shed: the balancer's and the supervisor's checks (a busy server is not a dead one). */
const neverShed = new Set(['/healthz', '/readyz']);

export function classOf(method: string, url: string): RequestClass {
  if (method === 'GET' || method === 'HEAD') return 'read';
  const path = url.split('?')[0] ?? url;
  return method === 'POST' && costlyPosts.has(path) ? 'costly' : 'write';
}

export interface AdmissionOptions {
  /**
   * The event loop's delay (ms) above which a class is shed, once it has
   * stayed above it for `sustainedSamples` samples in a row (one long pause,
   * as at start-up, is not overload).
   */
  shedDelayMs: Record<RequestClass, number>;
  /** Requests in this server at once above which a class is shed. */
  maxInFlight: Record<RequestClass, number>;
  /** How often the delay is read (and its histogram reset). */
  sampleMs: number;
  sustainedSamples: number;
  /** Counts one shed request. */
  onShed?: (cls: RequestClass, reason: 'event-loop' | 'in-flight') => void;
}

/** The event-loop bounds of the classes from the costly one's: writes ×2, reads ×4. */
export const delayBounds = (costlyMs: number): Record<RequestClass, number> => ({
  costly: costlyMs,
  write: costlyMs * 2,
  read: costlyMs * 4,
});

export const defaultAdmission: AdmissionOptions = {
  shedDelayMs: delayBounds(150),
  maxInFlight: { costly: 64, write: 128, read: 256 },
  sampleMs: 500,
  sustainedSamples: 2,
};

/**
 * Load shedding inside one web server, behind the balancer's own (its
 * maxconn and queue timeout): when the event loop falls behind, or too much
 * is in flight, a request of a class over its bound gets a 503 with
 * Retry-After at once, before any work (no session lookup, no query). The
 * bounds rise from costly to read, so cache-served reads survive longest.
 * Health checks are never shed; /metrics has its own listener.
 */
export function installAdmission(app: FastifyInstance, o: AdmissionOptions = defaultAdmission): { stop(): void } {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  // The lowest of the last samples: above a bound only when every one of them was.
  const recent: number[] = [];
  let delayMs = 0;
  const timer = setInterval(() => {
    // The histogram's resolution is a floor of every sample; what is above it is the loop's lateness.
    recent.push(Math.max(0, histogram.mean / 1e6 - 10));
    if (recent.length > o.sustainedSamples) recent.shift();
    delayMs = recent.length < o.sustainedSamples ? 0 : Math.min(...recent);
    histogram.reset();
  }, o.sampleMs);
  timer.unref();
  let inFlight = 0;
  app.addHook('onRequest', async (request, reply) => {
    if (neverShed.has(request.url)) return;
    const cls = classOf(request.method, request.url);
    const reason = delayMs > o.shedDelayMs[cls] ? 'event-loop' : inFlight >= o.maxInFlight[cls] ? 'in-flight' : null;
    if (reason) {
      o.onShed?.(cls, reason);
      reply
        .code(503)
        .header('retry-after', '1')
        .header('cache-control', 'no-store')
        .header('content-type', 'application/json; charset=utf-8');
      return reply.send(
        JSON.stringify({
          error: { code: 'OVERLOADED', message: 'the site is busy: try again in a second', requestId: request.id },
        }),
      );
    }
    inFlight++;
    // On the socket's answer being done, or the client gone: either way it no longer holds this server.
    reply.raw.once('close', () => inFlight--);
  });
  return {
    stop() {
      clearInterval(timer);
      histogram.disable();
    },
  };
}
