import path from 'node:path';
import { httpStatus, type StartedProcess, startProcess, waitUntil } from '../process.ts';
import { allProcesses, type ProcessSpec, type Topology } from '../topology.ts';
import { requireBinaries } from './postgres.ts';

type Exporter = Extract<ProcessSpec, { kind: 'postgresExporter' }>;

/** Every PostgreSQL server of the topology, as the exporter's data sources. */
export function exporterSources(t: Topology, superuserPassword: string): string[] {
  return allProcesses(t).flatMap((p) => {
    const pw = encodeURIComponent(superuserPassword);
    if (p.kind === 'postgres')
      return [`postgresql://postgres:${pw}@${p.listen.host}:${p.listen.port}/postgres?sslmode=disable`];
    if (p.kind === 'patroni')
      return [`postgresql://postgres:${pw}@${p.postgres.host}:${p.postgres.port}/postgres?sslmode=disable`];
    return [];
  });
}

/**
 * Debian's prometheus-postgres-exporter, one process for every PostgreSQL
 * server of the topology (comma-separated data sources, labelled by server).
 */
export async function startPostgresExporter(
  t: Topology,
  spec: Exporter,
  runDir: string,
  superuserPassword: string,
): Promise<StartedProcess> {
  requireBinaries(['/usr/bin/prometheus-postgres-exporter'], 'prometheus-postgres-exporter');
  const proc = startProcess({
    command: '/usr/bin/prometheus-postgres-exporter',
    args: [`--web.listen-address=${spec.listen.host}:${spec.listen.port}`, '--log.level=warn'],
    env: { DATA_SOURCE_NAME: exporterSources(t, superuserPassword).join(',') },
    log: path.join(runDir, 'logs', `${spec.name}.log`),
    cwd: runDir,
  });
  await waitUntil(async () => (await exporterUp(spec)) === 200, 30_000, 'the PostgreSQL exporter');
  return proc;
}

export const exporterUp = (spec: Exporter) =>
  httpStatus(`http://${spec.listen.host}:${spec.listen.port}/metrics`, 3000);
