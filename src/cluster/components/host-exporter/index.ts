import path from 'node:path';
import { z } from 'zod';
import { httpStatus, requireBinaries, type StartedProcess, startProcess, waitUntil } from '../../process.ts';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort } from '../component.ts';

/** The machine's own metrics: CPU, memory, disk I/O, network. */
export const hostExporterSpec = z.object({ kind: z.literal('hostExporter'), name: z.string(), listen: address });
type HostExporter = z.infer<typeof hostExporterSpec>;

/** Debian's prometheus-node-exporter: the machine's CPU, memory, disk I/O and network, for the chapter's host metrics. */
export async function startHostExporter(spec: HostExporter, runDir: string): Promise<StartedProcess> {
  requireBinaries(['/usr/bin/prometheus-node-exporter'], 'prometheus-node-exporter');
  const proc = startProcess({
    command: '/usr/bin/prometheus-node-exporter',
    args: [`--web.listen-address=${spec.listen.host}:${spec.listen.port}`, '--log.level=warn'],
    log: path.join(runDir, 'logs', `${spec.name}.log`),
    cwd: runDir,
  });
  await waitUntil(async () => (await hostExporterUp(spec)) === 200, 30_000, 'the host exporter');
  return proc;
}

export const hostExporterUp = (spec: HostExporter) =>
  httpStatus(`http://${spec.listen.host}:${spec.listen.port}/`, 2000);

export const hostExporter = defineComponent<HostExporter>({
  kind: 'hostExporter',
  spec: hostExporterSpec,
  tier: 'observability',
  scope: 'global',
  stage: 71,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'read-only' }],
  address: (s) => hostPort(s.listen),
  start: (s, ctx) => startHostExporter(s, ctx.runDir),
  health: async (s) => ({ ok: (await hostExporterUp(s)) === 200, role: 'metrics (host)' }),
  scrape: (s) => ({ job: 'node', target: hostPort(s.listen) }),
});
