import { readShardMap } from '../components/db-proxy/shard-map.ts';
import { componentOf } from '../components/registry.ts';
import { isAlive } from '../process.ts';
import type { Tier } from '../topology/address.ts';
import type { ProcessKind } from '../topology/schema.ts';
import { allProcesses, dataCenterOf, processesOf } from '../topology/select.ts';
import { contextFor } from './context.ts';
import { type ClusterState, howExited, type ProcessExit } from './state.ts';

export interface ProcessStatus {
  name: string;
  kind: ProcessKind;
  role: string;
  /** The data center it belongs to, or "global" (Prometheus, the dashboard, the supervisor). */
  dataCenter: string;
  /** The chapter's tier its component declares: edge, balancer, web, cache, database, … (the dashboard draws it there). */
  chapterTier: Tier;
  address: string;
  pid: number | null;
  alive: boolean;
  health: 'healthy' | 'unhealthy' | 'down';
  detail?: string;
  lagBytes?: number | null;
  /** Redis servers: `durable` or `cache`. */
  tier?: 'durable' | 'cache';
  /** Web servers: the git commit they run (from their /healthz). */
  version?: string;
  /** Patroni nodes and database proxies of a shard cluster (sharded): the cluster's name. */
  cluster?: string;
  /** Times the supervisor has started it again. */
  restarts: number;
  /** How its last run ended (code and signal null when unknown), if it ever died. */
  lastExit: ProcessExit | null;
}

/** Every process of the topology with its role, PID and health, checked live by its component. */
export async function status(state: ClusterState): Promise<ProcessStatus[]> {
  const memo = new Map<string, Promise<unknown>>();
  return Promise.all(
    allProcesses(state.topology).map(async (spec): Promise<ProcessStatus> => {
      const c = componentOf(spec);
      const dataCenter = dataCenterOf(state.topology, spec.name);
      const running = state.processes.find((p) => p.name === spec.name);
      const alive = running ? isAlive(running.pid) : false;
      const row: ProcessStatus = {
        name: spec.name,
        kind: spec.kind,
        role: spec.kind,
        dataCenter: dataCenter ?? 'global',
        chapterTier: c.tier,
        address: c.address(spec),
        pid: running?.pid ?? null,
        alive,
        health: 'down',
        restarts: running?.restarts ?? 0,
        lastExit: running?.lastExit ?? null,
      };
      if ('cluster' in spec && spec.cluster) row.cluster = spec.cluster;
      if (!alive) return row;
      const h = await c.health(spec, contextFor(state, dataCenter, { memo }));
      row.role = h.role;
      row.health = h.ok ? 'healthy' : 'unhealthy';
      if (h.detail !== undefined) row.detail = h.detail;
      if (h.lagBytes !== undefined) row.lagBytes = h.lagBytes;
      if (h.tier !== undefined) row.tier = h.tier;
      if (h.version !== undefined) row.version = h.version;
      return row;
    }),
  );
}

/** A sharded topology's map as etcd holds it: its version, and each shard cluster with its logical shards and primary. */
export interface ShardStatus {
  mapVersion: number;
  clusters: { name: string; logicalShards: number[]; primary: string | null }[];
}

/** The shard map of a sharded topology (undefined for any other, or while etcd does not answer). */
export async function shardStatus(state: ClusterState, rows: ProcessStatus[]): Promise<ShardStatus | undefined> {
  const names = [...new Set(rows.filter((r) => r.kind === 'dbProxy' && r.cluster).map((r) => r.cluster as string))];
  const [etcd] = processesOf(state.topology, 'etcd');
  if (names.length === 0 || !etcd) return undefined;
  const stored = await readShardMap(etcd, state.secrets.etcd).catch(() => undefined);
  if (!stored) return undefined;
  return {
    mapVersion: stored.map.version,
    clusters: names.map((name) => ({
      name,
      logicalShards: stored.map.clusters.flatMap((c, k) => (c === name ? [k] : [])),
      primary: rows.find((r) => r.kind === 'patroni' && r.cluster === name && r.role === 'leader')?.name ?? null,
    })),
  };
}

/** A last exit in words: "SIGKILL 12:03:04", "code 1 12:03:04". */
export function exitText(e: ProcessExit | null): string {
  return e ? `${howExited(e)} ${e.at.slice(11, 19)}` : '';
}

export function statusTable(rows: ProcessStatus[]): string {
  const header = ['NAME', 'DC', 'ROLE', 'ADDRESS', 'PID', 'HEALTH', 'LAG', 'RESTARTS', 'LAST EXIT'];
  const lines = rows.map((r) => [
    r.name,
    r.dataCenter,
    r.role,
    r.address,
    r.pid ? String(r.pid) : '-',
    r.health + (r.detail && r.health !== 'down' ? ` (${r.detail})` : ''),
    r.lagBytes === undefined ? '' : r.lagBytes === null ? '?' : `${r.lagBytes} B`,
    String(r.restarts),
    exitText(r.lastExit),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  return [header, ...lines]
    .map((l) =>
      l
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
