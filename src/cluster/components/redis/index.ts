import { z } from 'zod';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort } from '../component.ts';
import { masterToFollow, redisRole, startRedis } from './server.ts';

/**
 * A Redis server. `tier`: `durable` (sessions, rate limits; append-only file,
 * no eviction) or `cache` (no persistence, evicts under maxmemory).
 * `replicaOf` names the server it starts as a replica of; Sentinel moves that later.
 */
export const redisSpec = z.object({
  kind: z.literal('redis'),
  name: z.string(),
  listen: address,
  tier: z.enum(['durable', 'cache']),
  replicaOf: z.string().optional(),
});
type RedisSpec = z.infer<typeof redisSpec>;

export const redis = defineComponent<RedisSpec>({
  kind: 'redis',
  spec: redisSpec,
  tier: 'cache',
  scope: 'dataCenter',
  stage: 50,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'password' }],
  address: (s) => hostPort(s.listen),
  // Masters first, then their replicas.
  batches: (specs) => [...specs.filter((x) => !x.replicaOf), ...specs.filter((x) => x.replicaOf)].map((s) => [s]),
  async start(s, ctx) {
    if (ctx.restarting) {
      // A server that comes back joins the tier's current master as a replica (never as a stale master,
      // nor as a master while the Sentinels are still promoting one of its replicas).
      const sentinels = ctx.scope.filter((p) => p.kind === 'redisSentinel');
      const master = await masterToFollow(s.listen, sentinels, s.tier, ctx.state.secrets.sentinel);
      if (!master) ctx.log(`  ${s.name}: the Sentinels name no other master; it starts as the ${s.tier} master`);
      return startRedis(ctx.topology, s, ctx.runDir, ctx.state.secrets.redis, master ?? undefined, {
        restarting: true,
      });
    }
    const master = ctx.scope.find((p): p is RedisSpec => p.kind === 'redis' && p.name === s.replicaOf);
    return startRedis(ctx.topology, s, ctx.runDir, ctx.state.secrets.redis, master?.listen);
  },
  async health(s, ctx) {
    const r = await redisRole(s, ctx.state.secrets.redis);
    return {
      role: r?.role ?? 'unknown',
      tier: s.tier,
      detail: `${s.tier}${r?.role === 'replica' ? (r.linkUp ? ', replicating' : ', link down') : ''}`,
      ok: r !== null && (r.role === 'master' || r.linkUp),
    };
  },
});
