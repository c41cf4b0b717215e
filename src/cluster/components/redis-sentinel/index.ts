import { z } from 'zod';
import { address } from '../../topology/address.ts';
import type { SpecOf } from '../../topology/schema.ts';
import { redisMasterName } from '../../topology/select.ts';
import { defineComponent, hostPort, type RunContext } from '../component.ts';
import { sentinelView, startSentinel, waitForSentinels } from '../redis/server.ts';

/** A Redis Sentinel: watches every Redis master of its data center and promotes a replica when one fails. */
export const redisSentinelSpec = z.object({ kind: z.literal('redisSentinel'), name: z.string(), listen: address });

const mastersOf = (ctx: RunContext) =>
  ctx.scope.filter((p): p is SpecOf<'redis'> => p.kind === 'redis' && p.replicaOf === undefined);

export const redisSentinel = defineComponent<z.infer<typeof redisSentinelSpec>>({
  kind: 'redisSentinel',
  spec: redisSentinelSpec,
  tier: 'cache',
  scope: 'dataCenter',
  stage: 55,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'password' }],
  address: (s) => hostPort(s.listen),
  start: (s, ctx) => startSentinel(s, mastersOf(ctx), ctx.runDir, ctx.state.secrets),
  async ready(sentinels, ctx) {
    const masters = mastersOf(ctx);
    ctx.log(`  Redis: ${ctx.scope.filter((p) => p.kind === 'redis').length} servers, ${sentinels.length} Sentinels`);
    await waitForSentinels(sentinels, masters, ctx.state.secrets.sentinel);
  },
  async health(s, ctx) {
    const view = await sentinelView(s, ctx.state.secrets.sentinel);
    return {
      role: 'sentinel',
      detail: view ? view.map((m) => `${m.name} at ${m.address}`).join(', ') : undefined,
      ok: view?.every((m) => !m.flags.includes('down')) ?? false,
    };
  },
  // Web servers find the Redis tiers through the Sentinels, never a fixed master address.
  provides: (sentinels, ctx) =>
    sentinels.length
      ? {
          redisSentinels: sentinels.map((s) => hostPort(s.listen)).join(','),
          redisPassword: ctx.state.secrets.redis,
          redisSentinelPassword: ctx.state.secrets.sentinel,
          redisDurableName: redisMasterName('durable'),
          redisCacheName: redisMasterName('cache'),
        }
      : {},
});
