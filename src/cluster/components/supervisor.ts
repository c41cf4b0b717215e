import path from 'node:path';
import { httpStatus, type StartedProcess, startProcess, waitUntil } from '../process.ts';
import type { ProcessSpec } from '../topology.ts';
import { projectRoot } from './web.ts';

type Supervisor = Extract<ProcessSpec, { kind: 'supervisor' }>;

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
  });
}

/** A supervisor started again (it finds the running processes in the state file), once its API answers. */
export async function startSupervisor(spec: Supervisor, runDir: string): Promise<StartedProcess> {
  const proc = spawnSupervisor(spec.name, runDir);
  await waitUntil(async () => (await supervisorUp(spec)) === 200, 30_000, 'the supervisor');
  return proc;
}

export const supervisorUrl = (spec: Supervisor) => `http://${spec.listen.host}:${spec.listen.port}`;

export const supervisorUp = (spec: Supervisor) => httpStatus(`${supervisorUrl(spec)}/healthz`);
