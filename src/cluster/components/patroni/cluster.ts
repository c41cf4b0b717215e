import path from 'node:path';
import { requireBinaries, type StartedProcess, startProcess, waitUntil } from '../../process.ts';
import { writePrivate } from '../../run/private.ts';
import type { SpecOf, Topology } from '../../topology/schema.ts';
import { hbaSources } from '../hosts.ts';
import { pgBin, postgresDir, postgresUser } from '../postgres/server.ts';

type Patroni = SpecOf<'patroni'>;
type Etcd = SpecOf<'etcd'>;

export interface DbSecrets {
  superuser: string;
  replication: string;
  rewind: string;
  app: string;
  /** Patroni's REST API: basic auth on its unsafe endpoints (switchover, restart, reinitialize, config). */
  patroniRest: string;
  /** etcd's root user (Patroni's leader key and config live there). */
  etcd: string;
}

/** The user of Patroni's REST API (basic auth on its unsafe endpoints). */
export const patroniRestUser = 'scaleout';

/** The header a change through Patroni's REST API (PATCH /config, POST /switchover …) sends. */
export const patroniRestAuth = (password: string) => ({
  authorization: `Basic ${Buffer.from(`${patroniRestUser}:${password}`).toString('base64')}`,
});

/** One Patroni cluster per scope name: a data center's shard clusters each have their own leader key. */
export const patroniScope = (t: Pick<Topology, 'name'>, cluster: string | undefined) =>
  `scaleout-${t.name}${cluster ? `-${cluster}` : ''}`;

/** Where a standby cluster's standby leader streams from (a link to the primary data center's primary). */
export interface StandbySource {
  host: string;
  port: number;
}

/**
 * A cluster's dynamic configuration, as bootstrap writes it to etcd and as a
 * data-center failover rewrites it: with `standbyOf`, a standby cluster (its
 * standby leader streams from there, a base backup first; synchronous
 * replication is off, Patroni runs none into a standby cluster), else a
 * primary one (synchronous inside its data center when the topology says so).
 */
export function patroniDcsConfig(t: Topology, standbyOf: StandbySource | undefined) {
  return {
    ttl: t.options.patroniTtl,
    loop_wait: 1,
    retry_timeout: 2,
    maximum_lag_on_failover: 1048576,
    synchronous_mode: t.options.synchronous && !standbyOf,
    ...(standbyOf
      ? { standby_cluster: { host: standbyOf.host, port: standbyOf.port, create_replica_methods: ['basebackup'] } }
      : {}),
    postgresql: {
      use_pg_rewind: true,
      use_slots: true,
      parameters: {
        // logical: a shard cluster's schemas move by logical replication (PostgreSQL 15's FOR TABLES IN SCHEMA).
        wal_level: t.options.logicalReplication ? 'logical' : 'replica',
        hot_standby: 'on',
        max_wal_senders: 10,
        max_replication_slots: 10,
        wal_log_hints: 'on',
        max_connections: 200,
        hot_standby_feedback: 'on',
      },
    },
  };
}

/**
 * Patroni's YAML for one node. Failover detection is the leader-key TTL; with
 * loop_wait 1 and retry_timeout 2, `loop_wait + 2 * retry_timeout <= ttl`
 * holds for ttl ≥ 5. Synchronous mode is a topology option.
 */
export function patroniConfig(t: Topology, node: Patroni, etcd: Etcd, dir: string, secrets: DbSecrets): string {
  const q = (s: string) => JSON.stringify(s);
  return `scope: ${q(patroniScope(t, node.cluster))}
namespace: /service/
name: ${q(node.name)}
log:
  level: INFO
restapi:
  listen: ${node.rest.host}:${node.rest.port}
  connect_address: ${node.rest.host}:${node.rest.port}
  authentication: {username: ${patroniRestUser}, password: ${q(secrets.patroniRest)}}
ctl:
  authentication: {username: ${patroniRestUser}, password: ${q(secrets.patroniRest)}}
etcd3:
  hosts: ${etcd.client.host}:${etcd.client.port}
  username: root
  password: ${q(secrets.etcd)}
bootstrap:
  # A cluster's dynamic configuration (in etcd once it exists): JSON is YAML.
  dcs: ${JSON.stringify(patroniDcsConfig(t, node.standbyOf))}
  initdb:
    - encoding: UTF8
    - data-checksums
    - auth-local: trust
    - auth-host: scram-sha-256
postgresql:
  listen: ${node.postgres.host}:${node.postgres.port}
  connect_address: ${node.postgres.host}:${node.postgres.port}
  data_dir: ${q(path.join(dir, 'data'))}
  bin_dir: ${q(pgBin)}
  pgpass: ${q(path.join(dir, 'run', 'pgpass'))}
  authentication:
    superuser: {username: postgres, password: ${q(secrets.superuser)}}
    replication: {username: replicator, password: ${q(secrets.replication)}}
    rewind: {username: rewinder, password: ${q(secrets.rewind)}}
  parameters:
    unix_socket_directories: ${q(path.join(dir, 'run'))}
    shared_buffers: 64MB
${
  t.options.logicalReplication
    ? `    # A move's subscription starts its apply worker at once: the launcher starts workers at most once per
    # wal_retrieve_retry_interval (5 s by default), so the second of two moves in a row waited 5.5 s to copy.
    wal_retrieve_retry_interval: 200ms
`
    : ''
}  pg_hba:
    - local all all trust
${hbaSources(t)
  .flatMap((a) => [`    - host replication replicator ${a} scram-sha-256`, `    - host all all ${a} scram-sha-256`])
  .join('\n')}
watchdog:
  mode: off
tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
`;
}

/** Starts one Patroni node (which starts and manages its PostgreSQL) as the postgres user. */
export function startPatroni(
  t: Topology,
  node: Patroni,
  etcd: Etcd,
  runDir: string,
  secrets: DbSecrets,
): StartedProcess {
  requireBinaries(['/usr/bin/patroni', `${pgBin}/postgres`], 'patroni postgresql');
  const dir = postgresDir(path.join(runDir, node.name));
  postgresDir(path.join(dir, 'run'));
  const config = path.join(dir, 'patroni.yml');
  // It holds every database password: readable by Patroni (the postgres user) alone.
  writePrivate(config, patroniConfig(t, node, etcd, dir, secrets), postgresUser());
  return startProcess({
    command: '/usr/bin/patroni',
    args: [config],
    log: path.join(runDir, 'logs', `${node.name}.log`),
    user: 'postgres',
    cwd: dir,
  });
}

export interface PatroniMember {
  name: string;
  role: string;
  state: string;
  host: string;
  port: number;
  lag?: number | string;
  timeline?: number;
}

/** The cluster as Patroni sees it, asked of any node that answers. */
export async function patroniCluster(nodes: Patroni[]): Promise<PatroniMember[] | null> {
  for (const n of nodes) {
    try {
      const res = await fetch(`http://${n.rest.host}:${n.rest.port}/cluster`, { signal: AbortSignal.timeout(1000) });
      if (!res.ok) continue;
      const body = (await res.json()) as { members?: PatroniMember[] };
      return body.members ?? [];
    } catch {
      // next node
    }
  }
  return null;
}

export const isLeader = (m: PatroniMember) => m.role === 'leader' || m.role === 'master' || m.role === 'primary';
/** Whether these nodes are a standby cluster: a copy of another data center's cluster. */
export const isStandbyCluster = (nodes: Pick<Patroni, 'standbyOf'>[]) => nodes.some((n) => n.standbyOf !== undefined);
/** The leader of a standby cluster: read-only, streaming from another data center. */
export const isStandbyLeader = (m: PatroniMember) => m.role === 'standby_leader';
/** Whoever leads the cluster: its primary, or a standby cluster's standby leader. */
const leads = (m: PatroniMember) => isLeader(m) || isStandbyLeader(m);
export const isReplica = (m: PatroniMember) => m.role === 'replica' || m.role === 'sync_standby';

/**
 * Ready: one leader running (or a standby cluster's standby leader: Patroni
 * 3.0.2 says "running" for it, later versions "streaming"), every other node
 * a streaming replica, and (in sync mode) a sync standby.
 */
export function clusterReady(members: PatroniMember[] | null, nodes: number, synchronous: boolean): boolean {
  if (!members || members.length < nodes) return false;
  const leaders = members.filter(
    (m) => (isLeader(m) || isStandbyLeader(m)) && (m.state === 'running' || m.state === 'streaming'),
  );
  const streaming = members.filter((m) => isReplica(m) && (m.state === 'streaming' || m.state === 'running'));
  const sync = members.some((m) => m.role === 'sync_standby');
  return leaders.length === 1 && streaming.length === nodes - 1 && (!synchronous || sync);
}

/** The leader's pg_stat_replication, through Patroni: each replica's application_name and state. */
export async function leaderReplication(
  nodes: Patroni[],
  leaderName: string,
): Promise<{ application_name: string; state: string; sync_state: string }[]> {
  const leader = nodes.find((n) => n.name === leaderName);
  if (!leader) return [];
  const res = await fetch(`http://${leader.rest.host}:${leader.rest.port}/patroni`, {
    signal: AbortSignal.timeout(1000),
  });
  const body = (await res.json()) as {
    replication?: { application_name: string; state: string; sync_state: string }[];
  };
  return body.replication ?? [];
}

/** How many replicas the leader itself sees streaming. */
export async function leaderStreaming(nodes: Patroni[], leaderName: string): Promise<number> {
  return (await leaderReplication(nodes, leaderName)).filter((r) => r.state === 'streaming').length;
}

/**
 * Waits until the cluster is whole: Patroni's view (from etcd, which keeps a
 * dead member's key until its TTL) and the leader's own pg_stat_replication
 * must both show every replica streaming.
 */
export async function waitForCluster(nodes: Patroni[], synchronous: boolean, timeoutMs: number): Promise<string> {
  let leader = '';
  await waitUntil(
    async () => {
      const members = await patroniCluster(nodes);
      if (!clusterReady(members, nodes.length, synchronous)) return false;
      leader = members?.find(leads)?.name ?? '';
      return (await leaderStreaming(nodes, leader)) === nodes.length - 1;
    },
    timeoutMs,
    'a Patroni leader with every replica streaming',
  );
  return leader;
}
