import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { Drain } from './drain.ts';

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

/**
 * /healthz: the process answers, with the version (git commit) it runs.
 * /readyz: its dependencies answer too (as their last background probe
 * found), and it is not shutting down (a draining server answers 503 so that
 * the balancer takes it out of rotation).
 * (/metrics has its own listener.)
 */
export function healthRoutes(
  checks: ReadinessCheck[],
  version = 'unknown',
  drain?: Drain,
  /** Requests whose body is still arriving (the supervisor's in-flight metric subtracts them). */
  receivingBody?: () => number,
): FastifyPluginAsync {
  return async (app) => {
    const probes = checks.map((c) =>
      dependencyProbe(c, (err) => app.log.warn({ err, dependency: c.name }, 'readiness check failed')),
    );
    app.get('/healthz', async () =>
      receivingBody ? { status: 'ok', version, receivingBody: receivingBody() } : { status: 'ok', version },
    );
    app.get('/readyz', async (_request, reply) => {
      if (drain?.draining) {
        drain.failedCheck();
        return reply.code(503).header('connection', 'close').send({ status: 'draining', checks: {} });
      }
      const results = await Promise.all(
        probes.map(async (p) => [p.name, (await p.state()) ? 'ok' : 'failing'] as const),
      );
      const ok = results.every(([, s]) => s === 'ok');
      return reply
        .code(ok ? 200 : 503)
        .send({ status: ok ? 'ready' : 'not ready', checks: Object.fromEntries(results) });
    });
  };
}

/** How old a dependency's last answer may be before a check asks it again (in the background). */
const probeEveryMs = 250;
/** A dependency that has not answered a probe in this long is failing. */
const probeTimeoutMs = 2000;

/**
 * One dependency's readiness, probed in the background: /readyz answers from
 * the last result at once and starts a new probe when that result is older
 * than 250 ms (one at a time). So a busy server does not fail its checks by
 * waiting on its own dependencies behind its load; a slow database makes the
 * site slow, not absent. A dependency is failing when its last probe failed,
 * or took longer than 2 s. Only the first check waits for its probe.
 */
function dependencyProbe(check: ReadinessCheck, onFailure: (err: unknown) => void) {
  let last: { ok: boolean; at: number } | undefined;
  let running: Promise<boolean> | undefined;
  const probe = (): Promise<boolean> => {
    running ??= withTimeout(check.check(), probeTimeoutMs)
      .then(
        () => true,
        (err) => {
          onFailure(err);
          return false;
        },
      )
      .then((ok) => {
        last = { ok, at: Date.now() };
        running = undefined;
        return ok;
      });
    return running;
  };
  return {
    name: check.name,
    async state(): Promise<boolean> {
      if (!last) return probe();
      if (Date.now() - last.at > probeEveryMs) void probe();
      return last.ok;
    },
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
