import { z } from 'zod';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort } from '../component.ts';
import { controlNodeAnswers, startControlNode } from '../control-node.ts';

/**
 * A data center's photo sync (`src/cluster/datacenter/photo-sync.ts`): it
 * sends the other data center every photo file stored in this one, and
 * stores what the other sends. `peer` is the other's own address; `via`,
 * this data center's delayed link to it.
 */
export const photoSyncSpec = z.object({
  kind: z.literal('photoSync'),
  name: z.string(),
  listen: address,
  peer: address,
  via: address,
});
type PhotoSync = z.infer<typeof photoSyncSpec>;

export const photoSyncUrl = (s: Pick<PhotoSync, 'listen'>) => `http://${hostPort(s.listen)}`;

export const photoSync = defineComponent<PhotoSync>({
  kind: 'photoSync',
  spec: photoSyncSpec,
  tier: 'web',
  scope: 'dataCenter',
  // After its link (15); before the web servers, which write the photos it sends.
  stage: 55,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'token' }],
  address: (s) => `${hostPort(s.listen)} ⇄ ${hostPort(s.peer)}`,
  start: (s, ctx) => startControlNode(s, ctx, 'photo-sync', photoSyncUrl(s)),
  health: async (s, ctx) => ({
    ok: await controlNodeAnswers(photoSyncUrl(s), ctx.state.secrets.control),
    role: 'photo replication',
  }),
  scrape: (s) => ({ job: 'photo-sync', target: hostPort(s.listen), needsToken: true }),
});
