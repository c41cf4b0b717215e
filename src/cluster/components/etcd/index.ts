import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { httpStatus, requireBinaries, type StartedProcess, startProcess, waitUntil } from '../../process.ts';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort } from '../component.ts';

export const etcdSpec = z.object({ kind: z.literal('etcd'), name: z.string(), client: address, peer: address });
type Etcd = z.infer<typeof etcdSpec>;

/**
 * Turns on etcd's authentication, once, on a new member: a `root` user with
 * the topology's password, then `auth enable`. From then on every key read
 * and write needs the password (Patroni gives it); /health and /metrics stay
 * open. Through the JSON gateway, so the password is on no command line.
 */
async function enableAuth(spec: Etcd, password: string): Promise<void> {
  const base = `http://${spec.client.host}:${spec.client.port}/v3/auth`;
  const call = async (route: string, body: unknown) => {
    const res = await fetch(`${base}/${route}`, {
      method: 'POST',
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`etcd ${route}: ${res.status} ${text}`);
  };
  await call('user/add', { name: 'root', password });
  await call('role/add', { name: 'root' });
  await call('user/grant', { user: 'root', role: 'root' });
  await call('enable', {});
}

/** A one-member etcd 3.4: Patroni's consensus store (its leader lock and cluster config). */
export async function startEtcd(spec: Etcd, runDir: string, password: string): Promise<StartedProcess> {
  requireBinaries(['/usr/bin/etcd'], 'etcd-server');
  const dir = path.join(runDir, spec.name);
  const fresh = !existsSync(path.join(dir, 'data'));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const client = `http://${spec.client.host}:${spec.client.port}`;
  const peer = `http://${spec.peer.host}:${spec.peer.port}`;
  const proc = startProcess({
    command: '/usr/bin/etcd',
    args: [
      '--name',
      spec.name,
      '--data-dir',
      path.join(dir, 'data'),
      '--listen-client-urls',
      client,
      '--advertise-client-urls',
      client,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `${spec.name}=${peer}`,
      '--initial-cluster-state',
      'new',
      '--logger',
      'zap',
    ],
    log: path.join(runDir, 'logs', `${spec.name}.log`),
    cwd: dir,
  });
  await waitUntil(async () => await etcdHealthy(spec), 30_000, 'etcd');
  if (fresh) await enableAuth(spec, password);
  return proc;
}

export async function etcdHealthy(spec: Etcd): Promise<boolean> {
  return (await httpStatus(`http://${spec.client.host}:${spec.client.port}/health`)) === 200;
}

/** etcd: Patroni's consensus store. */
export const etcd = defineComponent<Etcd>({
  kind: 'etcd',
  spec: etcdSpec,
  tier: 'coordination',
  scope: 'dataCenter',
  stage: 20,
  addresses: (s) => [s.client, s.peer],
  access: (s) => [
    { at: s.client, guard: 'password' },
    { at: s.peer, guard: 'peers' },
  ],
  address: (s) => hostPort(s.client),
  start: (s, ctx) => startEtcd(s, ctx.runDir, ctx.state.secrets.etcd),
  health: async (s) => ({ ok: await etcdHealthy(s), role: 'consensus store' }),
  scrape: (s) => ({ job: 'etcd', target: hostPort(s.client) }),
});
