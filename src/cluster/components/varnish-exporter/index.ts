import path from 'node:path';
import { z } from 'zod';
import { httpStatus, requireBinaries, startProcess, waitUntil } from '../../process.ts';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort } from '../component.ts';
import { varnishWorkDir } from '../varnish/index.ts';

/** Prometheus metrics of one edge (the process named by `edge`): Debian's prometheus-varnish-exporter. */
export const varnishExporterSpec = z.object({
  kind: z.literal('varnishExporter'),
  name: z.string(),
  listen: address,
  edge: z.string(),
});
type VarnishExporter = z.infer<typeof varnishExporterSpec>;

const up = (s: VarnishExporter) => httpStatus(`http://${hostPort(s.listen)}/metrics`, 3000);

export const varnishExporter = defineComponent<VarnishExporter>({
  kind: 'varnishExporter',
  spec: varnishExporterSpec,
  tier: 'observability',
  scope: 'dataCenter',
  stage: 97,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'read-only' }],
  address: (s) => hostPort(s.listen),
  async start(s, ctx) {
    requireBinaries(['/usr/bin/prometheus-varnish-exporter'], 'prometheus-varnish-exporter');
    const proc = startProcess({
      command: '/usr/bin/prometheus-varnish-exporter',
      args: ['-n', varnishWorkDir(ctx.runDir, { name: s.edge }), '-web.listen-address', hostPort(s.listen)],
      log: path.join(ctx.runDir, 'logs', `${s.name}.log`),
    });
    await waitUntil(async () => (await up(s)) === 200, 30_000, s.name);
    return proc;
  },
  health: async (s) => ({ ok: (await up(s)) === 200, role: 'metrics (Varnish exporter)' }),
  scrape: (s) => ({ job: 'varnish', target: hostPort(s.listen) }),
});
