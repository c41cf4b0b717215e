import { z } from 'zod';
import { address } from '../../topology/address.ts';
import { webMetrics } from '../../topology/select.ts';
import { defineComponent, hostPort } from '../component.ts';
import { siteHealth, startWeb } from '../web/process.ts';

export const workerSpec = z.object({
  kind: z.literal('worker'),
  name: z.string(),
  /** Its /healthz and /readyz (a worker serves no site). */
  listen: address,
  metrics: address.optional(),
});

/**
 * A scaleout worker (`scaleout worker`): the job handlers (photo variants,
 * fan-out, edge purges) on the BullMQ queue of the durable Redis, configured
 * by environment like a web server. SIGTERM drains it: it takes no new job,
 * finishes the ones it runs, and exits.
 */
export const worker = defineComponent<z.infer<typeof workerSpec>>({
  kind: 'worker',
  spec: workerSpec,
  tier: 'worker',
  scope: 'dataCenter',
  // After the web servers: the first of them applies the migrations.
  stage: 62,
  addresses: (s) => [s.listen, webMetrics(s)],
  access: (s) => [
    { at: s.listen, guard: 'read-only' },
    { at: webMetrics(s), guard: 'read-only' },
  ],
  address: (s) => hostPort(s.listen),
  batches: (specs) => [specs],
  start: (s, ctx) =>
    startWeb(s, ctx.runDir, ctx.siteEnv('worker'), {
      checkout: ctx.state.checkout,
      command: 'worker',
      nice: ctx.topology.options.workerNice,
    }),
  health: (s) => siteHealth(s, 'job worker'),
  // Workers come and go (scaled by queue depth): Prometheus reads them from a file of their own.
  scrape: (s) => ({ job: 'worker', target: hostPort(webMetrics(s)), dynamic: true }),
});
