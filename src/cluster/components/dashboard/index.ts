import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { httpStatus, type StartedProcess, startProcess, waitUntil } from '../../process.ts';
import { address } from '../../topology/address.ts';
import type { Topology } from '../../topology/schema.ts';
import { defineComponent, hostPort } from '../component.ts';

/** The project's own page: the topology drawn live, charts, fault buttons. */
export const dashboardSpec = z.object({ kind: z.literal('dashboard'), name: z.string(), listen: address });
type Dashboard = z.infer<typeof dashboardSpec>;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

/** `scaleout dashboard` for this topology, as a process of its own. */
export async function startDashboard(
  t: Topology,
  spec: Dashboard,
  runRoot: string,
  runDir: string,
): Promise<StartedProcess> {
  const proc = startProcess({
    command: process.execPath,
    args: [
      path.join(root, 'bin', 'scaleout.js'),
      'dashboard',
      '--name',
      t.name,
      '--host',
      spec.listen.host,
      '--port',
      String(spec.listen.port),
    ],
    env: { SCALEOUT_RUN_ROOT: runRoot },
    log: path.join(runDir, 'logs', `${spec.name}.log`),
    cwd: root,
  });
  await waitUntil(async () => (await dashboardUp(spec)) === 200, 30_000, 'the dashboard');
  return proc;
}

export const dashboardUp = (spec: Dashboard) => httpStatus(`http://${spec.listen.host}:${spec.listen.port}/uplot.js`);

export const dashboard = defineComponent<Dashboard>({
  kind: 'dashboard',
  spec: dashboardSpec,
  tier: 'observability',
  scope: 'global',
  stage: 85,
  addresses: (s) => [s.listen],
  address: (s) => hostPort(s.listen),
  start: (s, ctx) => startDashboard(ctx.topology, s, path.dirname(ctx.runDir), ctx.runDir),
  health: async (s) => ({ ok: (await dashboardUp(s)) === 200, role: 'dashboard' }),
});
