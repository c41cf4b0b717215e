import { z } from 'zod';
import { address } from '../../topology/address.ts';
import { webMetrics } from '../../topology/select.ts';
import { defineComponent, hostPort } from '../component.ts';
import { siteHealth, startWeb } from './process.ts';

export const webSpec = z.object({
  kind: z.literal('web'),
  name: z.string(),
  listen: address,
  /** Its private /metrics listener (default: the same host, port 9464). */
  metrics: address.optional(),
  db: z.enum(['pglite', 'postgres']),
});

/**
 * A scaleout web server (`scaleout start`), configured by environment from
 * what its data center's components provide. The first one applies the
 * migrations; the others then start together.
 */
export const web = defineComponent<z.infer<typeof webSpec>>({
  kind: 'web',
  spec: webSpec,
  tier: 'web',
  scope: 'dataCenter',
  stage: 60,
  publicUrl: (s) => `http://${hostPort(s.listen)}`,
  addresses: (s) => [s.listen, webMetrics(s)],
  access: (s) => [
    { at: s.listen, guard: 'public' },
    { at: webMetrics(s), guard: 'read-only' },
  ],
  address: (s) => hostPort(s.listen),
  batches: ([first, ...rest]) => (first ? [[first], rest] : []),
  start: (s, ctx) => startWeb(s, ctx.runDir, ctx.siteEnv('web'), { checkout: ctx.state.checkout }),
  health: (s) => siteHealth(s, 'web server'),
  // Web servers come and go (scaling, deploys): Prometheus reads them from a file of their own.
  scrape: (s) => ({ job: 'web', target: hostPort(webMetrics(s)), dynamic: true }),
});
