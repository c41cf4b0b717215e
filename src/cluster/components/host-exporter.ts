import path from 'node:path';
import { httpStatus, type StartedProcess, startProcess, waitUntil } from '../process.ts';
import type { ProcessSpec } from '../topology.ts';
import { requireBinaries } from './postgres.ts';

type HostExporter = Extract<ProcessSpec, { kind: 'hostExporter' }>;

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
