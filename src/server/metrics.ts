import Fastify, { type FastifyInstance } from 'fastify';
import type { Metrics } from '../platform/observability/metrics.ts';

/**
 * /metrics on a listener of its own (loopback by default): the figures it
 * shows (daily active users, sign-ups, per-route counts) are not for the
 * public, so the public port answers 404 there.
 */
export async function buildMetricsServer(metrics: Metrics): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_request, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );
  return app;
}

/** The URL a listening server is reachable at (loopback for a wildcard address). */
export function listenUrl(app: FastifyInstance): string {
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('not listening');
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host.replace(/^(0\.0\.0\.0|\[::\])$/, '127.0.0.1')}:${address.port}`;
}
