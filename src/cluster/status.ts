import { dashboardUp } from './components/dashboard.ts';
import { etcdHealthy } from './components/etcd.ts';
import { hostExporterUp } from './components/host-exporter.ts';
import { isLeader, leaderReplication, patroniCluster } from './components/patroni.ts';
import { exporterUp } from './components/postgres-exporter.ts';
import { prometheusReady } from './components/prometheus.ts';
import { redisExporterUp, redisRole, sentinelView } from './components/redis.ts';
import { supervisorUp } from './components/supervisor.ts';
import { webReady, webVersion } from './components/web.ts';
import { type ClusterState, howExited, type ProcessExit } from './launcher.ts';
import { httpStatus, isAlive, tcpOpen } from './process.ts';
import { addressOf, allProcesses, type ProcessKind, type ProcessSpec } from './topology.ts';

export interface ProcessStatus {
  name: string;
  kind: ProcessKind;
  role: string;
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
  /** Times the supervisor has started it again. */
  restarts: number;
  /** How its last run ended (code and signal null when unknown), if it ever died. */
  lastExit: ProcessExit | null;
}

/** Every process of the topology with its role, PID and health, checked live. */
export async function status(state: ClusterState): Promise<ProcessStatus[]> {
  const all = allProcesses(state.topology);
  const nodes = all.filter((p): p is Extract<ProcessSpec, { kind: 'patroni' }> => p.kind === 'patroni');
  const members = nodes.length ? await patroniCluster(nodes) : null;
  const leaderName = members?.find(isLeader)?.name;
  const replication = leaderName ? await leaderReplication(nodes, leaderName).catch(() => []) : [];
  return Promise.all(
    all.map(async (spec): Promise<ProcessStatus> => {
      const running = state.processes.find((p) => p.name === spec.name);
      const alive = running ? isAlive(running.pid) : false;
      const row: ProcessStatus = {
        name: spec.name,
        kind: spec.kind,
        role: spec.kind,
        address: addressOf(spec),
        pid: running?.pid ?? null,
        alive,
        health: 'down',
        restarts: running?.restarts ?? 0,
        lastExit: running?.lastExit ?? null,
      };
      if (!alive) return row;
      let ok = false;
      switch (spec.kind) {
        case 'web':
          ok = (await webReady(spec)) === 200;
          row.role = 'web server';
          row.version = await webVersion(spec);
          // Shown by `status` and on the dashboard beside the health.
          if (row.version) row.detail = `version ${row.version.slice(0, 12)}`;
          break;
        case 'postgres':
          ok = await tcpOpen(spec.listen.host, spec.listen.port);
          row.role = 'primary';
          break;
        case 'etcd':
          ok = await etcdHealthy(spec);
          row.role = 'consensus store';
          break;
        case 'patroni': {
          const m = members?.find((x) => x.name === spec.name);
          row.role = m ? (isLeader(m) ? 'leader' : m.role === 'sync_standby' ? 'sync replica' : 'replica') : 'unknown';
          const stream = replication.find((r) => r.application_name === spec.name);
          row.detail = m && !isLeader(m) ? (stream?.state ?? 'not streaming') : m?.state;
          row.lagBytes = m && !isLeader(m) ? (typeof m.lag === 'number' ? m.lag : null) : undefined;
          ok = m !== undefined && (isLeader(m) ? m.state === 'running' : stream?.state === 'streaming');
          break;
        }
        case 'dbProxy':
          ok = await tcpOpen(spec.primary.host, spec.primary.port);
          row.role = 'database proxy';
          break;
        case 'hostExporter':
          ok = (await hostExporterUp(spec)) === 200;
          row.role = 'metrics (host)';
          break;
        case 'postgresExporter':
          ok = (await exporterUp(spec)) === 200;
          row.role = 'metrics (PostgreSQL exporter)';
          break;
        case 'dashboard':
          ok = (await dashboardUp(spec)) === 200;
          row.role = 'dashboard';
          break;
        case 'prometheus':
          ok = (await prometheusReady(spec)) === 200;
          row.role = 'metrics (Prometheus)';
          break;
        case 'redis': {
          const r = await redisRole(spec);
          row.role = r?.role ?? 'unknown';
          row.tier = spec.tier;
          row.detail = `${spec.tier}${r?.role === 'replica' ? (r.linkUp ? ', replicating' : ', link down') : ''}`;
          ok = r !== null && (r.role === 'master' || r.linkUp);
          break;
        }
        case 'redisSentinel': {
          const view = await sentinelView(spec);
          row.role = 'sentinel';
          row.detail = view ? view.map((m) => `${m.name} at ${m.address}`).join(', ') : undefined;
          ok = view?.every((m) => !m.flags.includes('down')) ?? false;
          break;
        }
        case 'redisExporter':
          ok = (await redisExporterUp(spec)) === 200;
          row.role = 'metrics (Redis exporter)';
          break;
        case 'loadBalancer':
          ok = (await httpStatus(`http://${spec.listen.host}:${spec.listen.port}/healthz`)) === 200;
          row.role = 'load balancer (public)';
          break;
        case 'supervisor':
          ok = (await supervisorUp(spec)) === 200;
          row.role = 'supervisor';
          break;
      }
      row.health = ok ? 'healthy' : 'unhealthy';
      return row;
    }),
  );
}

/** A last exit in words: "SIGKILL 12:03:04", "code 1 12:03:04". */
export function exitText(e: ProcessExit | null): string {
  return e ? `${howExited(e)} ${e.at.slice(11, 19)}` : '';
}

export function statusTable(rows: ProcessStatus[]): string {
  const header = ['NAME', 'ROLE', 'ADDRESS', 'PID', 'HEALTH', 'LAG', 'RESTARTS', 'LAST EXIT'];
  const lines = rows.map((r) => [
    r.name,
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
