import type pg from 'pg';
import { EtcdClient } from '../../platform/db/etcd-map.ts';
import { superuserClient } from '../components/db-proxy/query.ts';
import { isStandbyLeader, patroniCluster, patroniDcsConfig, patroniScope } from '../components/patroni/cluster.ts';
import { type ClusterState, type DataCenterEvent, updateState } from '../run/state.ts';
import type { SpecOf, Topology } from '../topology/schema.ts';
import { processesOf } from '../topology/select.ts';

/**
 * Which data center holds the primary, and which are fenced. A topology of
 * two data centers starts with its primary in the one whose Patroni cluster
 * is no standby cluster; a data-center failover or switchover records the
 * change in the run's state (`dataCenterRoles`), which outlives every process.
 */
export interface DataCenterRoles {
  primary: string;
  /** Data centers whose cluster may run only as a standby of the primary one (a failover fenced them). */
  fenced: string[];
}

export function dataCenterRoles(state: Pick<ClusterState, 'topology' | 'dataCenterRoles'>): DataCenterRoles {
  if (state.dataCenterRoles) return state.dataCenterRoles;
  const t = state.topology;
  const primary =
    t.dataCenters.find((dc) => processesOf(t, 'patroni', { dataCenter: dc.name }).every((n) => !n.standbyOf))?.name ??
    (t.dataCenters[0] as { name: string }).name;
  return { primary, fenced: [] };
}

/** Whether the topology has a Patroni cluster in each of two or more data centers (multi-dc). */
export const hasDataCenterPair = (t: Topology): boolean =>
  t.dataCenters.length >= 2 &&
  t.dataCenters.every((dc) => processesOf(t, 'patroni', { dataCenter: dc.name }).length > 0);

/** The other data centers: the standbys of `primary`. */
export const othersThan = (t: Topology, dc: string): string[] =>
  t.dataCenters.map((d) => d.name).filter((n) => n !== dc);

/** The link a data center's standby cluster streams through (to the other data center's primary). */
export function replicationLink(t: Topology, dataCenter: string): SpecOf<'delayProxy'> {
  const link = processesOf(t, 'delayProxy', { dataCenter }).find((p) => p.purpose === 'replication');
  if (!link) throw new Error(`${dataCenter} has no replication link`);
  return link;
}

/** A data center's database proxy (its own-primary port reaches that data center's primary, and nothing else). */
export function databaseProxyOf(t: Topology, dataCenter: string): SpecOf<'dbProxy'> {
  const [proxy] = processesOf(t, 'dbProxy', { dataCenter });
  if (!proxy?.localPrimary) throw new Error(`${dataCenter} has no database proxy with an own-primary port`);
  return proxy;
}

/**
 * Whether `dataCenter` has a primary now: one of its Patroni nodes answers
 * 200 on `/primary` (what its database proxy checks too; asked of the nodes,
 * because HAProxy 2.6 counts every server up from its start until a check
 * fails, so a proxy just started again would say "a primary" for a second).
 */
export async function hasPrimary(t: Topology, dataCenter: string, timeoutMs = 1000): Promise<boolean> {
  const nodes = processesOf(t, 'patroni', { dataCenter }).filter((n) => n.cluster === undefined);
  const answers = await Promise.all(
    nodes.map(async (n) => {
      try {
        const res = await fetch(`http://${n.rest.host}:${n.rest.port}/primary`, {
          signal: AbortSignal.timeout(timeoutMs),
        });
        await res.arrayBuffer();
        return res.status === 200;
      } catch {
        return false;
      }
    }),
  );
  return answers.some(Boolean);
}

const etcdClientOf = (state: ClusterState, dataCenter: string) => {
  const [etcd] = processesOf(state.topology, 'etcd', { dataCenter });
  if (!etcd) throw new Error(`${dataCenter} has no etcd`);
  return new EtcdClient({
    endpoint: `http://${etcd.client.host}:${etcd.client.port}`,
    user: 'root',
    password: state.secrets.etcd,
    key: '',
  });
};

/** Where Patroni keeps a cluster's dynamic configuration in its data center's etcd. */
export const dcsConfigKey = (t: Topology) => `/service/${patroniScope(t, undefined)}/config`;

/**
 * Rewrites `dataCenter`'s cluster's dynamic configuration in its etcd: a
 * standby cluster of `standbyOf`'s primary (through this data center's
 * replication link), or, without it, a primary cluster. Patroni applies it
 * at its next loop: a primary given `standby_cluster` demotes (an immediate
 * shutdown, then pg_rewind against the new primary), a standby leader
 * without it promotes. A cluster whose etcd has no configuration yet gets
 * the whole of it, so that a node started there cannot bootstrap a primary.
 * Returns whether anything changed.
 */
export async function setClusterRole(
  state: ClusterState,
  dataCenter: string,
  standbyOf: string | undefined,
  o: { readOnly?: boolean; synchronousWith?: string[] } = {},
): Promise<boolean> {
  const t = state.topology;
  const source = standbyOf ? replicationLink(t, dataCenter).listen : undefined;
  const wanted = patroniDcsConfig(t, source);
  // A switchover's first step: the primary takes no new writes (every session's default, at Patroni's reload).
  if (o.readOnly) Object.assign(wanted.postgresql.parameters, { default_transaction_read_only: 'on' });
  // Synchronous across the data centers: a commit waits for the other data center's standby leader (one of
  // its nodes: whichever leads it) to have it on disk. Patroni leaves synchronous_standby_names alone while its
  // own synchronous mode is off, which a cluster synchronous across data centers needs.
  if (o.synchronousWith?.length) {
    Object.assign(wanted, { synchronous_mode: false });
    Object.assign(wanted.postgresql.parameters, {
      synchronous_standby_names: synchronousStandbyNames(o.synchronousWith),
    });
  }
  const etcd = etcdClientOf(state, dataCenter);
  const key = dcsConfigKey(t);
  for (let attempt = 0; attempt < 5; attempt++) {
    const kv = await etcd.get(key);
    const current = kv ? (JSON.parse(kv.value) as Record<string, unknown>) : undefined;
    // What Patroni keeps there beside (its own keys) stays; what the topology says is written over.
    const next: Record<string, unknown> = { ...current, ...wanted };
    if (!('standby_cluster' in wanted)) delete next.standby_cluster;
    if (current && JSON.stringify(current) === JSON.stringify(next)) return false;
    if (await etcd.putIf(key, JSON.stringify(next), kv?.modRevision ?? '0')) return true;
  }
  throw new Error(`${dataCenter}'s cluster configuration kept changing under the rewrite`);
}

/** `ANY 1 ("a", "b")`: any one of these nodes (their application_name is their Patroni name). */
export const synchronousStandbyNames = (nodes: string[]) =>
  `ANY 1 (${nodes.map((n) => `"${n.replaceAll('"', '')}"`).join(', ')})`;

/** Whether `dataCenter`'s cluster configuration makes its primary's commits wait for another data center. */
export async function synchronousAcrossOf(state: ClusterState, dataCenter: string): Promise<boolean> {
  const kv = await etcdClientOf(state, dataCenter).get(dcsConfigKey(state.topology));
  if (!kv) return false;
  const config = JSON.parse(kv.value) as { postgresql?: { parameters?: Record<string, unknown> } };
  return Boolean(config.postgresql?.parameters?.synchronous_standby_names);
}

/** The role `dataCenter`'s cluster has now in its etcd: 'standby' (of another data center), 'primary', or null. */
export async function clusterRoleOf(state: ClusterState, dataCenter: string): Promise<'primary' | 'standby' | null> {
  const kv = await etcdClientOf(state, dataCenter).get(dcsConfigKey(state.topology));
  if (!kv) return null;
  return (JSON.parse(kv.value) as { standby_cluster?: unknown }).standby_cluster ? 'standby' : 'primary';
}

/** Whether `dataCenter`'s standby leader is streaming from the primary data center (its WAL receiver). */
export async function standbyStreams(state: ClusterState, dataCenter: string): Promise<boolean> {
  const nodes = processesOf(state.topology, 'patroni', { dataCenter });
  const members = await patroniCluster(nodes);
  const leader = members?.find(isStandbyLeader);
  if (!leader) return false;
  let c: pg.Client | undefined;
  try {
    c = await superuserClient(state, leader, { timeoutMs: 1000, statementTimeoutMs: 1000 });
    const r = await c.query<{ status: string }>("SELECT status FROM pg_stat_wal_receiver WHERE status = 'streaming'");
    return r.rows.length > 0;
  } catch {
    return false;
  } finally {
    await c?.end().catch(() => {});
  }
}

export function recordEvent(runDir: string, event: DataCenterEvent): void {
  updateState(runDir, (s) => {
    s.dataCenterEvents = [...(s.dataCenterEvents ?? []), event].slice(-20);
  });
}
