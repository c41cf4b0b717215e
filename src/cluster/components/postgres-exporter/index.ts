import path from 'node:path';
import { z } from 'zod';
import { httpStatus, requireBinaries, type StartedProcess, startProcess, waitUntil } from '../../process.ts';
import { address } from '../../topology/address.ts';
import type { Topology } from '../../topology/schema.ts';
import { allProcesses } from '../../topology/select.ts';
import { defineComponent, hostPort } from '../component.ts';

/** Prometheus metrics of one PostgreSQL server (the process named by `server`). */
export const postgresExporterSpec = z.object({
  kind: z.literal('postgresExporter'),
  name: z.string(),
  listen: address,
  server: z.string(),
});
type Exporter = z.infer<typeof postgresExporterSpec>;

/** The data source of the server an exporter watches. */
export function exporterSource(t: Topology, spec: Exporter, superuserPassword: string): string {
  const server = allProcesses(t).find((p) => p.name === spec.server);
  const pw = encodeURIComponent(superuserPassword);
  if (server?.kind === 'postgres')
    return `postgresql://postgres:${pw}@${server.listen.host}:${server.listen.port}/postgres?sslmode=disable`;
  if (server?.kind === 'patroni')
    return `postgresql://postgres:${pw}@${server.postgres.host}:${server.postgres.port}/postgres?sslmode=disable`;
  throw new Error(`${spec.name}: no PostgreSQL server named ${spec.server}`);
}

/** Debian's prometheus-postgres-exporter for one PostgreSQL server. */
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
    env: { DATA_SOURCE_NAME: exporterSource(t, spec, superuserPassword) },
    log: path.join(runDir, 'logs', `${spec.name}.log`),
    cwd: runDir,
  });
  await waitUntil(async () => (await exporterUp(spec)) === 200, 30_000, 'the PostgreSQL exporter');
  return proc;
}

// Its landing page answers at once; /metrics asks every server and can take seconds.
export const exporterUp = (spec: Exporter) => httpStatus(`http://${spec.listen.host}:${spec.listen.port}/`, 2000);

export const postgresExporter = defineComponent<Exporter>({
  kind: 'postgresExporter',
  spec: postgresExporterSpec,
  tier: 'observability',
  scope: 'dataCenter',
  stage: 72,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'read-only' }],
  address: (s) => hostPort(s.listen),
  start: (s, ctx) => startPostgresExporter(ctx.topology, s, ctx.runDir, ctx.state.secrets.superuser),
  health: async (s) => ({ ok: (await exporterUp(s)) === 200, role: 'metrics (PostgreSQL exporter)' }),
  scrape: (s) => ({ job: 'postgres', target: hostPort(s.listen) }),
});
