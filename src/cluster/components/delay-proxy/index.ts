import path from 'node:path';
import { z } from 'zod';
import { startProcess, tcpOpen, waitUntil } from '../../process.ts';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort } from '../component.ts';
import { projectRoot } from '../web/process.ts';

/**
 * The distance between two data centers: a TCP proxy in the data center
 * that connects out, on one of its own addresses, to `target` in the other,
 * `delayMs` late each way. Every cross-data-center link goes through one.
 */
export const delayProxySpec = z.object({
  kind: z.literal('delayProxy'),
  name: z.string(),
  listen: address,
  target: address,
  delayMs: z.number().min(0).max(1000),
  /** What the link carries (replication, sessions, …), for status. */
  carries: z.string().optional(),
  /**
   * `replication`: the stream of this data center's cluster while it is a standby cluster (from the
   * other data center's primary); `writes`: this data center's writes to the other's primary; `photos`:
   * the photo files this data center sends the other's photo sync.
   */
  purpose: z.enum(['replication', 'writes', 'photos']).optional(),
});
type DelayProxySpec = z.infer<typeof delayProxySpec>;

export const delayProxy = defineComponent<DelayProxySpec>({
  kind: 'delayProxy',
  spec: delayProxySpec,
  tier: 'coordination',
  scope: 'dataCenter',
  // First of its data center: it only listens, and connects out when a client comes (its target may start
  // later, in the other data center), so everything that reaches across through it finds it up: a standby
  // cluster's base backup, web servers' writes, Redis replicas.
  stage: 15,
  addresses: (s) => [s.listen],
  // It carries bytes only: whatever it reaches (PostgreSQL, Redis) asks for its own password.
  access: (s) => [{ at: s.listen, guard: 'password' }],
  address: (s) => `${hostPort(s.listen)} → ${hostPort(s.target)}`,
  async start(s, ctx) {
    const proc = startProcess({
      command: process.execPath,
      args: [
        path.join(projectRoot, 'bin', 'scaleout.js'),
        'delay-proxy',
        '--listen',
        hostPort(s.listen),
        '--target',
        hostPort(s.target),
        '--delay-ms',
        String(s.delayMs),
      ],
      log: path.join(ctx.runDir, 'logs', `${s.name}.log`),
      cwd: projectRoot,
    });
    await waitUntil(() => tcpOpen(s.listen.host, s.listen.port), 15_000, `${s.name} listening`);
    return proc;
  },
  health: async (s) => ({
    ok: await tcpOpen(s.listen.host, s.listen.port),
    role: 'link between data centers',
    detail: `+${s.delayMs} ms each way to ${hostPort(s.target)}${s.carries ? ` (${s.carries})` : ''}`,
  }),
});
