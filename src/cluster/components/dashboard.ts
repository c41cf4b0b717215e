import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpStatus, type StartedProcess, startProcess, waitUntil } from '../process.ts';
import type { ProcessSpec, Topology } from '../topology.ts';

type Dashboard = Extract<ProcessSpec, { kind: 'dashboard' }>;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

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
