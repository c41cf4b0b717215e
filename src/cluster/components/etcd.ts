import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { httpStatus, type StartedProcess, startProcess, waitUntil } from '../process.ts';
import type { ProcessSpec } from '../topology.ts';
import { requireBinaries } from './postgres.ts';

type Etcd = Extract<ProcessSpec, { kind: 'etcd' }>;

/** A one-member etcd 3.4: Patroni's consensus store (its leader lock and cluster config). */
export async function startEtcd(spec: Etcd, runDir: string): Promise<StartedProcess> {
  requireBinaries(['/usr/bin/etcd'], 'etcd-server');
  const dir = path.join(runDir, spec.name);
  mkdirSync(dir, { recursive: true });
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
  return proc;
}

export async function etcdHealthy(spec: Etcd): Promise<boolean> {
  return (await httpStatus(`http://${spec.client.host}:${spec.client.port}/health`)) === 200;
}
