import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { Drain } from './drain.ts';

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

/**
 * /healthz: the process answers, with the version (git commit) it runs.
 * /readyz: its dependencies answer too, and it is not shutting down (a
 * draining server answers 503 so that the balancer takes it out of rotation).
 * (/metrics has its own listener.)
 */
export function healthRoutes(checks: ReadinessCheck[], version = 'unknown', drain?: Drain): FastifyPluginAsync {
  return async (app) => {
    app.get('/healthz', async () => ({ status: 'ok', version }));
    app.get('/readyz', async (request, reply) => {
      if (drain?.draining) {
        drain.failedCheck();
        return reply.code(503).header('connection', 'close').send({ status: 'draining', checks: {} });
      }
      const results = await Promise.all(
        checks.map(async (c) => {
          try {
            await withTimeout(c.check(), 2000);
            return [c.name, 'ok'] as const;
          } catch (err) {
            request.log.warn({ err, dependency: c.name }, 'readiness check failed');
            return [c.name, 'failing'] as const;
          }
        }),
      );
      const ok = results.every(([, s]) => s === 'ok');
      return reply
        .code(ok ? 200 : 503)
        .send({ status: ok ? 'ready' : 'not ready', checks: Object.fromEntries(results) });
    });
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A worker's whole HTTP surface: /healthz and /readyz on its port (the
 * supervisor's and a balancer's checks), nothing of the site.
 */
export async function buildHealthServer(o: {
  version: string;
  drain?: Drain;
  readiness: ReadinessCheck[];
}): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  o.drain?.install(app);
  await app.register(healthRoutes(o.readiness, o.version, o.drain));
  return app;
}
