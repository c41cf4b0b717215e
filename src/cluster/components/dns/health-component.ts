import path from 'node:path';
import { z } from 'zod';
import { httpStatus, startProcess, waitUntil } from '../../process.ts';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort } from '../component.ts';
import { projectRoot } from '../web/process.ts';
import { edgesOf } from './index.ts';

/** The DNS's view of each data center, with hysteresis (health.ts), and its metrics. */
export const dnsHealthSpec = z.object({
  kind: z.literal('dnsHealth'),
  name: z.string(),
  listen: address,
  /** The Host each edge's /readyz is asked with (the site's name). */
  hostHeader: z.string().optional(),
});
type DnsHealth = z.infer<typeof dnsHealthSpec>;

export const dnsHealth = defineComponent<DnsHealth>({
  kind: 'dnsHealth',
  spec: dnsHealthSpec,
  tier: 'dns',
  scope: 'global',
  // After the edges it probes, before the DNS that asks it.
  stage: 97,
  addresses: (s) => [s.listen],
  // It says which data centers are up, which anyone may learn from the DNS anyway.
  access: (s) => [{ at: s.listen, guard: 'read-only' }],
  address: (s) => hostPort(s.listen),
  async start(s, ctx) {
    const targets = edgesOf(ctx.topology, {}).flatMap((d) => [
      '--target',
      `${d.name}=http://${hostPort(d.edge)}/readyz`,
    ]);
    const proc = startProcess({
      command: process.execPath,
      args: [
        path.join(projectRoot, 'bin', 'scaleout.js'),
        'dns-health',
        '--listen',
        hostPort(s.listen),
        ...targets,
        ...(s.hostHeader ? ['--host-header', s.hostHeader] : []),
      ],
      log: path.join(ctx.runDir, 'logs', `${s.name}.log`),
      cwd: projectRoot,
    });
    await waitUntil(
      async () => (await httpStatus(`http://${hostPort(s.listen)}/metrics`, 1000)) === 200,
      15_000,
      `${s.name} answering`,
    );
    return proc;
  },
  health: async (s) => ({
    ok: (await httpStatus(`http://${hostPort(s.listen)}/metrics`, 1000)) === 200,
    role: 'data centers’ health (for the DNS)',
  }),
  scrape: (s) => ({ job: 'dns-health', target: hostPort(s.listen) }),
});
