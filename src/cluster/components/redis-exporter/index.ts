import { z } from 'zod';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort } from '../component.ts';
import { redisExporterUp, startRedisExporter } from '../redis/server.ts';

/** Prometheus metrics of one Redis server (the process named by `server`): Debian's prometheus-redis-exporter. */
export const redisExporterSpec = z.object({
  kind: z.literal('redisExporter'),
  name: z.string(),
  listen: address,
  server: z.string(),
});

export const redisExporter = defineComponent<z.infer<typeof redisExporterSpec>>({
  kind: 'redisExporter',
  spec: redisExporterSpec,
  tier: 'observability',
  scope: 'dataCenter',
  stage: 70,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'read-only' }],
  address: (s) => hostPort(s.listen),
  start(s, ctx) {
    const server = ctx.scope.find((p) => p.kind === 'redis' && p.name === s.server);
    if (server?.kind !== 'redis') throw new Error(`${s.name}: no Redis named ${s.server}`);
    return startRedisExporter(s, server, ctx.runDir, ctx.state.secrets.redis);
  },
  health: async (s) => ({ ok: (await redisExporterUp(s)) === 200, role: 'metrics (Redis exporter)' }),
  scrape: (s) => ({ job: 'redis', target: hostPort(s.listen) }),
});
