import path from 'node:path';
import { z } from 'zod';
import { controlPlaneNodeEnv, httpStatus, startProcess, waitUntil } from '../../process.ts';
import { bearer } from '../../run/guard.ts';
import { readControlToken } from '../../run/private.ts';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort } from '../component.ts';
import { projectRoot } from '../web/process.ts';

/**
 * The witness of a two-data-center topology (`src/cluster/datacenter/witness.ts`):
 * in the global scope, it fails the primary over to the other data center when
 * neither it nor that data center sees the primary one, and fences the old one.
 * `listen`: its control API (status, failover, switchover) and /metrics, behind the run's token.
 */
export const witnessSpec = z.object({
  kind: z.literal('witness'),
  name: z.string(),
  listen: address,
  /** How long the primary data center is unseen by both voices before the witness fails over (ms). */
  failoverAfterMs: z.number().int().min(1000).max(600_000).default(5000),
  /** false: it watches and reports, and fails over only when asked. */
  automatic: z.boolean().default(true),
});
type Witness = z.infer<typeof witnessSpec>;

export const witnessUrl = (s: Pick<Witness, 'listen'>) => `http://${hostPort(s.listen)}`;

export const witness = defineComponent<Witness>({
  kind: 'witness',
  spec: witnessSpec,
  tier: 'control',
  scope: 'global',
  // After both data centers' clusters and proxies, before the supervisor.
  stage: 98,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'token' }],
  address: (s) => hostPort(s.listen),
  async start(s, ctx) {
    const proc = startProcess({
      command: process.execPath,
      args: [path.join(projectRoot, 'bin', 'scaleout.js'), 'witness', '--run-dir', ctx.runDir, '--name', s.name],
      log: path.join(ctx.runDir, 'logs', `${s.name}.log`),
      cwd: projectRoot,
      env: controlPlaneNodeEnv,
    });
    const token = readControlToken(ctx.runDir);
    await waitUntil(
      async () => (await httpStatus(`${witnessUrl(s)}/healthz`, 1000, 'GET', bearer(token))) === 200,
      20_000,
      `${s.name} answering`,
    );
    return proc;
  },
  health: async (s, ctx) => ({
    ok: (await httpStatus(`${witnessUrl(s)}/healthz`, 1000, 'GET', bearer(ctx.state.secrets.control))) === 200,
    role: s.automatic ? 'witness (fails over by itself)' : 'witness (fails over when asked)',
  }),
  scrape: (s) => ({ job: 'witness', target: hostPort(s.listen), needsToken: true }),
});
