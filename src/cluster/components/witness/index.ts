import { z } from 'zod';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort } from '../component.ts';
import { controlNodeAnswers, startControlNode } from '../control-node.ts';

/**
 * The witness of a two-data-center topology (`src/cluster/datacenter/witness.ts`):
 * in the global scope, it fails the primary over to the other data center when
 * neither it nor that data center sees the primary one, and fences the old one.
 * `listen`: its control API (status, failover, switchover) and /metrics, behind the run's token.
 */
export const witnessSpec = z.object({
  kind: z.literal('witness'),
  name: z.string(),
  listen: address,
  /** How long the primary data center is unseen by both voices before the witness fails over (ms). */
  failoverAfterMs: z.number().int().min(1000).max(600_000).default(5000),
  /** false: it watches and reports, and fails over only when asked. */
  automatic: z.boolean().default(true),
});
type Witness = z.infer<typeof witnessSpec>;

export const witnessUrl = (s: Pick<Witness, 'listen'>) => `http://${hostPort(s.listen)}`;

export const witness = defineComponent<Witness>({
  kind: 'witness',
  spec: witnessSpec,
  tier: 'control',
  scope: 'global',
  // After both data centers' clusters and proxies, before the supervisor.
  stage: 98,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'token' }],
  address: (s) => hostPort(s.listen),
  start: (s, ctx) => startControlNode(s, ctx, 'witness', witnessUrl(s)),
  health: async (s, ctx) => ({
    ok: await controlNodeAnswers(witnessUrl(s), ctx.state.secrets.control),
    role: s.automatic ? 'witness (fails over by itself)' : 'witness (fails over when asked)',
  }),
  scrape: (s) => ({ job: 'witness', target: hostPort(s.listen), needsToken: true }),
});
