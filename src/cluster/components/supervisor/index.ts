import path from 'node:path';
import { z } from 'zod';
import { controlPlaneNodeEnv, httpStatus, type StartedProcess, startProcess, waitUntil } from '../../process.ts';
import { bearer } from '../../run/guard.ts';
import { readControlToken } from '../../run/private.ts';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort } from '../component.ts';
import { projectRoot } from '../web/process.ts';

/**
 * Keeps every other process of the topology running (restarts with
 * Kubernetes' crash-loop back-off), scales and deploys the web tier through
 * the balancer's runtime API, and runs the controllers (the autoscaler).
 * `listen`: its private control API and /metrics.
 */
export const supervisorSpec = z.object({ kind: z.literal('supervisor'), name: z.string(), listen: address });
type Supervisor = z.infer<typeof supervisorSpec>;

/**
 * `scaleout supervise` for the topology in `runDir`, as a process of its own;
 * with `launch`, it first starts the topology (`up` then follows its progress).
 */
export function spawnSupervisor(name: string, runDir: string, o: { launch?: boolean } = {}): StartedProcess {
  return startProcess({
    command: process.execPath,
    args: [
      path.join(projectRoot, 'bin', 'scaleout.js'),
      'supervise',
      '--run-dir',
      runDir,
      ...(o.launch ? ['--launch'] : []),
    ],
    log: path.join(runDir, 'logs', `${name}.log`),
    cwd: projectRoot,
    env: controlPlaneNodeEnv,
  });
}

/** A supervisor started again (it finds the running processes in the state file), once its API answers. */
export async function startSupervisor(spec: Supervisor, runDir: string): Promise<StartedProcess> {
  const proc = spawnSupervisor(spec.name, runDir);
  const token = readControlToken(runDir);
  await waitUntil(async () => (await supervisorUp(spec, token)) === 200, 30_000, 'the supervisor');
  return proc;
}

export const supervisorUrl = (spec: Supervisor) => `http://${spec.listen.host}:${spec.listen.port}`;

/** Its API answers (with the run's token, as every route asks). */
export const supervisorUp = (spec: Supervisor, token: string) =>
  httpStatus(`${supervisorUrl(spec)}/healthz`, 1000, 'GET', bearer(token));

export const supervisor = defineComponent<Supervisor>({
  kind: 'supervisor',
  spec: supervisorSpec,
  tier: 'control',
  scope: 'global',
  // Last: from here on, what dies is started again. `up` of a supervised topology is run by the supervisor itself.
  stage: 100,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'token' }],
  address: (s) => hostPort(s.listen),
  start: (s, ctx) => startSupervisor(s, ctx.runDir),
  launch: (s, runDir) => spawnSupervisor(s.name, runDir, { launch: true }),
  health: async (s, ctx) => ({ ok: (await supervisorUp(s, ctx.state.secrets.control)) === 200, role: 'supervisor' }),
  scrape: (s) => ({ job: 'supervisor', target: hostPort(s.listen), needsToken: true }),
});
