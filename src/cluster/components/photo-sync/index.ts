import path from 'node:path';
import { z } from 'zod';
import { controlPlaneNodeEnv, httpStatus, startProcess, waitUntil } from '../../process.ts';
import { bearer } from '../../run/guard.ts';
import { readControlToken } from '../../run/private.ts';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort } from '../component.ts';
import { projectRoot } from '../web/process.ts';

/**
 * A data center's photo sync (`src/cluster/datacenter/photo-sync.ts`): it
 * sends the other data center every photo file stored in this one, and
 * stores what the other sends. `peer` is the other's own address; `via`,
 * this data center's delayed link to it.
 */
export const photoSyncSpec = z.object({
  kind: z.literal('photoSync'),
  name: z.string(),
  listen: address,
  peer: address,
  via: address,
});
type PhotoSync = z.infer<typeof photoSyncSpec>;

export const photoSyncUrl = (s: Pick<PhotoSync, 'listen'>) => `http://${hostPort(s.listen)}`;

export const photoSync = defineComponent<PhotoSync>({
  kind: 'photoSync',
  spec: photoSyncSpec,
  tier: 'web',
  scope: 'dataCenter',
  // After its link (15); before the web servers, which write the photos it sends.
  stage: 55,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'token' }],
  address: (s) => `${hostPort(s.listen)} ⇄ ${hostPort(s.peer)}`,
  async start(s, ctx) {
    const proc = startProcess({
      command: process.execPath,
      args: [path.join(projectRoot, 'bin', 'scaleout.js'), 'photo-sync', '--run-dir', ctx.runDir, '--name', s.name],
      log: path.join(ctx.runDir, 'logs', `${s.name}.log`),
      cwd: projectRoot,
      env: controlPlaneNodeEnv,
    });
    const token = readControlToken(ctx.runDir);
    await waitUntil(
      async () => (await httpStatus(`${photoSyncUrl(s)}/healthz`, 1000, 'GET', bearer(token))) === 200,
      20_000,
      `${s.name} answering`,
    );
    return proc;
  },
  health: async (s, ctx) => ({
    ok: (await httpStatus(`${photoSyncUrl(s)}/healthz`, 1000, 'GET', bearer(ctx.state.secrets.control))) === 200,
    role: 'photo replication',
  }),
  scrape: (s) => ({ job: 'photo-sync', target: hostPort(s.listen), needsToken: true }),
});
