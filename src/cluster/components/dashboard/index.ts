import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { controlPlaneNodeEnv, httpStatus, type StartedProcess, startProcess, waitUntil } from '../../process.ts';
import { bearer } from '../../run/guard.ts';
import { readControlToken } from '../../run/private.ts';
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
    env: { ...controlPlaneNodeEnv, SCALEOUT_RUN_ROOT: runRoot },
    log: path.join(runDir, 'logs', `${spec.name}.log`),
    cwd: root,
  });
  const token = readControlToken(runDir);
  await waitUntil(async () => (await dashboardUp(spec, token)) === 200, 30_000, 'the dashboard');
  return proc;
}

/** Its page answers (with the run's token, as every route asks). */
export const dashboardUp = (spec: Dashboard, token: string) =>
  httpStatus(`${dashboardUrl(spec)}/uplot.js`, 1000, 'GET', bearer(token));

export const dashboardUrl = (spec: Dashboard) => `http://${spec.listen.host}:${spec.listen.port}`;

export const dashboard = defineComponent<Dashboard>({
  kind: 'dashboard',
  spec: dashboardSpec,
  tier: 'observability',
  scope: 'global',
  stage: 85,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'token' }],
  address: (s) => hostPort(s.listen),
  start: (s, ctx) => startDashboard(ctx.topology, s, path.dirname(ctx.runDir), ctx.runDir),
  health: async (s, ctx) => ({ ok: (await dashboardUp(s, ctx.state.secrets.control)) === 200, role: 'dashboard' }),
});
