import path from 'node:path';
import { controlPlaneNodeEnv, httpStatus, type StartedProcess, startProcess, waitUntil } from '../process.ts';
import { bearer } from '../run/guard.ts';
import { readControlToken } from '../run/private.ts';
import type { RunContext } from './component.ts';
import { projectRoot } from './web/process.ts';

/** Whether a token-guarded control process of the run answers its `/healthz`. */
export const controlNodeAnswers = async (url: string, token: string): Promise<boolean> =>
  (await httpStatus(`${url}/healthz`, 1000, 'GET', bearer(token))) === 200;

/**
 * A control process of the run in Node (`scaleout <command> --run-dir <run> --name <name>`: the witness, a
 * photo sync), with the control plane's heap bounds; started once its token-guarded `/healthz` answers.
 */
export async function startControlNode(
  s: { name: string },
  ctx: Pick<RunContext, 'runDir'>,
  command: string,
  url: string,
): Promise<StartedProcess> {
  const proc = startProcess({
    command: process.execPath,
    args: [path.join(projectRoot, 'bin', 'scaleout.js'), command, '--run-dir', ctx.runDir, '--name', s.name],
    log: path.join(ctx.runDir, 'logs', `${s.name}.log`),
    cwd: projectRoot,
    env: controlPlaneNodeEnv,
  });
  const token = readControlToken(ctx.runDir);
  await waitUntil(() => controlNodeAnswers(url, token), 20_000, `${s.name} answering`);
  return proc;
}
