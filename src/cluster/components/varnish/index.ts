import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { httpStatus, requireBinaries, type StartedProcess, startProcess, waitUntil } from '../../process.ts';
import { writePrivate } from '../../run/private.ts';
import { address } from '../../topology/address.ts';
import type { Topology } from '../../topology/schema.ts';
import { processesOf } from '../../topology/select.ts';
import { defineComponent, hostPort, type RunContext } from '../component.ts';
import { clientHosts } from '../hosts.ts';
import { edgeVcl } from './vcl.ts';

/**
 * The CDN edge of a data center (step 1.5): Varnish 7.1 with xkey, in front of
 * the balancer. `listen` is public; `admin` is Varnish's CLI, which asks for
 * the secret file (-S) of the topology; `memory` bounds its cache (malloc).
 */
export const varnishSpec = z.object({
  kind: z.literal('varnish'),
  name: z.string(),
  listen: address,
  admin: address,
  memory: z.string().default('64m'),
});
type Varnish = z.infer<typeof varnishSpec>;

/**
 * Varnish's working directory (its shared memory log and compiled VCL). The
 * compiler and the cache process run as the users varnish and vcache, who
 * cannot enter the run directory, so it lives outside it, named after the
 * run; it holds no secret (the VCL with the purge token is compiled from the
 * run directory by the manager, as root).
 */
export const varnishWorkDir = (runDir: string, edge: { name: string }) =>
  path.join(
    os.tmpdir(),
    'scaleout-varnish',
    `${edge.name}-${createHash('sha256').update(runDir).digest('hex').slice(0, 12)}`,
  );

const balancerOf = (ctx: RunContext) => {
  const lb = ctx.scope.find((p) => p.kind === 'loadBalancer');
  if (lb?.kind !== 'loadBalancer') throw new Error('the edge needs a load balancer in its data center');
  return lb;
};
/** The origin as the edge reaches it: the balancer's PROXY-protocol port (its public one when it has none). */
const originOf = (ctx: RunContext) => {
  const lb = balancerOf(ctx);
  return lb.fromEdge ?? lb.listen;
};

/** The varnish group (Debian's package makes it). */
function varnishGroup(): number {
  const res = spawnSync('getent', ['group', 'varnish'], { encoding: 'utf8' });
  const gid = Number(res.stdout.split(':')[2]);
  if (res.status !== 0 || !Number.isInteger(gid)) throw new Error('no varnish group: run "scaleout setup"');
  return gid;
}

export async function startVarnish(t: Topology, spec: Varnish, ctx: RunContext): Promise<StartedProcess> {
  requireBinaries(
    ['/usr/sbin/varnishd', '/usr/lib/x86_64-linux-gnu/varnish/vmods/libvmod_xkey.so'],
    'varnish varnish-modules',
  );
  // varnishd reads its VCL and secret as the user varnish, who cannot enter the run directory: they live
  // beside its working directory, in a directory of root and the varnish group only (0750; files 0640).
  const work = varnishWorkDir(ctx.runDir, spec);
  const dir = `${work}.conf`;
  rmSync(work, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.dirname(work), { recursive: true, mode: 0o755 });
  chmodSync(path.dirname(work), 0o755);
  const group = varnishGroup();
  mkdirSync(dir, { mode: 0o750 });
  chownSync(dir, 0, group);
  chmodSync(dir, 0o750);
  const shared = (file: string, content: string) => {
    writePrivate(file, content);
    chownSync(file, 0, group);
    chmodSync(file, 0o640);
  };
  const vcl = path.join(dir, 'default.vcl');
  shared(vcl, edgeVcl({ origin: originOf(ctx), purgers: clientHosts(t), purgeToken: ctx.state.secrets.edge }));
  const secret = path.join(dir, 'admin.secret');
  shared(secret, `${ctx.state.secrets.edge}\n`);
  // Its working directory must be open to its compiler and cache process (other users): the package's umask,
  // not the run's 077. It holds the shared-memory log and compiled VCL (no secret: the VCL source stays in `dir`).
  const log = path.join(ctx.runDir, 'logs', `${spec.name}.log`);
  closeSync(openSync(log, 'a', 0o600));
  const umask = process.umask(0o022);
  const proc = startProcess({
    command: '/usr/sbin/varnishd',
    args: [
      '-F',
      '-a',
      hostPort(spec.listen),
      '-T',
      hostPort(spec.admin),
      '-S',
      secret,
      '-f',
      vcl,
      '-s',
      `malloc,${spec.memory}`,
      '-n',
      work,
      // The long tail is not pinned: objects are evicted LRU within the memory bound.
      '-p',
      'default_ttl=120',
      '-p',
      'default_grace=0',
    ],
    log,
    cwd: ctx.runDir,
  });
  process.umask(umask);
  await waitUntil(async () => (await edgeUp(spec)) === 200, 30_000, `${spec.name} answering`);
  return proc;
}

/**
 * Every varnishd of this edge that runs now (its manager and its cache
 * process, found by their working directory on their command line): a
 * manager killed with SIGKILL can leave its cache process, which keeps the
 * port; restart and down stop them.
 */
function edgeProcesses(runDir: string, spec: Varnish): number[] {
  const work = varnishWorkDir(runDir, spec);
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args[0]?.endsWith('varnishd') && args.includes(work)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

export const edgeUrl = (spec: Varnish) => `http://${hostPort(spec.listen)}`;
export const edgeUp = (spec: Varnish) => httpStatus(`${edgeUrl(spec)}/.edge/health`);

export const varnish = defineComponent<Varnish>({
  kind: 'varnish',
  spec: varnishSpec,
  tier: 'edge',
  scope: 'dataCenter',
  // After the balancer it stands in front of.
  stage: 95,
  publicUrl: (s) => edgeUrl(s),
  addresses: (s) => [s.listen, s.admin],
  access: (s) => [
    { at: s.listen, guard: 'public' },
    { at: s.admin, guard: 'password' },
  ],
  address: (s) => hostPort(s.listen),
  start: (s, ctx) => startVarnish(ctx.topology, s, ctx),
  health: async (s) => ({ ok: (await edgeUp(s)) === 200, role: 'edge (public)' }),
  leftovers: (s, ctx) =>
    edgeProcesses(ctx.runDir, s).map((pid) => ({ name: `${s.name} varnishd`, pid, signal: 'SIGTERM' })),
  // Web servers build image URLs on their data center's edge while it answers, purge every data center's edge
  // when a photo goes (the other's holds copies of the same URLs), and know the origin.
  provides: (edges, ctx) =>
    edges.length
      ? {
          edgeUrls: [
            ...edges,
            ...processesOf(ctx.topology, 'varnish').filter((e) => !edges.some((own) => own.name === e.name)),
          ]
            .map(edgeUrl)
            .join(','),
          edgePurgeToken: ctx.state.secrets.edge,
          originUrl: `http://${hostPort(balancerOf(ctx).listen)}`,
        }
      : {},
});
