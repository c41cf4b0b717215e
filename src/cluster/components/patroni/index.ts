import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { fenceBeforeStart } from '../../datacenter/fence.ts';
import { isAlive } from '../../process.ts';
import { address } from '../../topology/address.ts';
import { processesOf } from '../../topology/select.ts';
import { defineComponent, hostPort, type RunContext } from '../component.ts';
import {
  isLeader,
  isStandbyCluster,
  isStandbyLeader,
  leaderReplication,
  patroniCluster,
  startPatroni,
  waitForCluster,
} from './cluster.ts';

export const patroniSpec = z.object({
  kind: z.literal('patroni'),
  name: z.string(),
  postgres: address,
  rest: address,
  /**
   * The Patroni cluster the node belongs to, when its data center has several
   * (the shard clusters of `sharded`: `pg-a`, `pg-b`, …); absent: the data
   * center's one cluster.
   */
  cluster: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,15}$/)
    .optional(),
  /**
   * A standby cluster (another data center's copy): its leader, the standby
   * leader, streams from this address (the primary data center's database
   * proxy, through a delay proxy) and the other nodes from it. Patroni never
   * promotes a standby cluster by itself; taking the standby out of its
   * config (PATCH /config) does.
   */
  standbyOf: address.optional(),
});
type Patroni = z.infer<typeof patroniSpec>;

/**
 * The PostgreSQL server under a Patroni node (its data dir's postmaster.pid),
 * if running. PIDs are reused, so only a process whose command line names
 * this data dir counts.
 */
export function postmasterPid(runDir: string, node: string): number | null {
  const dataDir = path.join(runDir, node, 'data');
  const file = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return null;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(dataDir) ? pid : null;
  } catch {
    return null;
  }
}

/** The nodes of one Patroni cluster of the scope: `cluster`'s (absent: the data center's one cluster). */
export const clusterNodes = (ctx: Pick<RunContext, 'scope'>, cluster: string | undefined) =>
  ctx.scope.filter((p): p is Patroni => p.kind === 'patroni' && p.cluster === cluster);

/** The cluster's members and the leader's replication, asked once per status call. */
const clusterView = (ctx: RunContext, cluster: string | undefined) =>
  ctx.once(`patroni:${ctx.dataCenter}:${cluster ?? ''}`, async () => {
    const nodes = clusterNodes(ctx, cluster);
    const members = await patroniCluster(nodes);
    // A standby cluster's replicas stream from its standby leader.
    const leader = (members?.find(isLeader) ?? members?.find(isStandbyLeader))?.name;
    const replication = leader ? await leaderReplication(nodes, leader).catch(() => []) : [];
    return { members, replication };
  });

/**
 * A Patroni node: it starts and manages its PostgreSQL, which streams from
 * the leader; etcd holds the leader key. A node started again rejoins as a
 * replica (rewinding if it was the old leader).
 */
export const patroni = defineComponent<Patroni>({
  kind: 'patroni',
  spec: patroniSpec,
  tier: 'database',
  scope: 'dataCenter',
  stage: 30,
  addresses: (s) => [s.postgres, s.rest],
  access: (s) => [
    { at: s.postgres, guard: 'password' },
    { at: s.rest, guard: 'password-for-changes' },
  ],
  address: (s) => hostPort(s.postgres),
  async start(s, ctx) {
    const [etcd] = processesOf(ctx.topology, 'etcd', ctx.dataCenter ? { dataCenter: ctx.dataCenter } : undefined);
    if (!etcd) throw new Error('Patroni needs etcd in its data center');
    // The fence: a node started again in a data center that does not hold the primary (a failover's old primary,
    // back) finds its cluster's configuration saying "standby of the primary one" before it runs, never a leader
    // key of its own to take as a second primary.
    if (ctx.restarting && ctx.dataCenter && s.cluster === undefined) await fenceBeforeStart(ctx.state, ctx.dataCenter);
    return startPatroni(ctx.topology, s, etcd, ctx.runDir, ctx.state.secrets);
  },
  async ready(nodes, ctx) {
    // Each Patroni cluster of the scope on its own (the shard clusters start together).
    const clusters = [...new Set(nodes.map((n) => n.cluster))];
    await Promise.all(
      clusters.map(async (cluster) => {
        const members = nodes.filter((n) => n.cluster === cluster);
        const named = cluster ? `cluster ${cluster}: ` : '';
        ctx.log(
          `  ${named}${members.length} Patroni nodes (PostgreSQL 15, ${ctx.topology.options.synchronous ? 'synchronous' : 'asynchronous'} replication)`,
        );
        if (isStandbyCluster(members)) {
          // Its source, the primary data center's proxy, starts in a later stage: the standby cluster's proxy
          // waits for it to stream.
          ctx.log(`  ${named}a standby cluster: it streams once the primary data center's proxy is up`);
          return;
        }
        const leader = await waitForCluster(members, ctx.topology.options.synchronous, 120_000);
        ctx.log(`  ${named}leader: ${leader}`);
      }),
    );
  },
  async health(s, ctx) {
    const { members, replication } = await clusterView(ctx, s.cluster);
    const m = members?.find((x) => x.name === s.name);
    const stream = replication.find((r) => r.application_name === s.name);
    if (m && isStandbyLeader(m)) {
      // It streams from the other data center: its own replication, not its leader's.
      return {
        role: 'standby leader',
        detail: `streams from ${s.standbyOf ? hostPort(s.standbyOf) : 'the primary data center'}, ${m.state}`,
        cluster: s.cluster,
        lagBytes: typeof m.lag === 'number' ? m.lag : null,
        ok: m.state === 'streaming' || m.state === 'running',
      };
    }
    const detail = m && !isLeader(m) ? (stream?.state ?? 'not streaming') : m?.state;
    return {
      role: m ? (isLeader(m) ? 'leader' : m.role === 'sync_standby' ? 'sync replica' : 'replica') : 'unknown',
      detail: s.cluster ? `cluster ${s.cluster}${detail ? `, ${detail}` : ''}` : detail,
      cluster: s.cluster,
      lagBytes: m && !isLeader(m) ? (typeof m.lag === 'number' ? m.lag : null) : undefined,
      ok: m !== undefined && (isLeader(m) ? m.state === 'running' : stream?.state === 'streaming'),
    };
  },
  scrape: (s) => ({ job: 'patroni', target: hostPort(s.rest) }),
  // As systemd stops what is left in a service's cgroup: the PostgreSQL a Patroni killed with SIGKILL left running
  // (fast shutdown), so a restarted node starts clean and `down` frees the port.
  leftovers(s, ctx) {
    const pid = postmasterPid(ctx.runDir, s.name);
    return pid ? [{ name: `${s.name} postgres`, pid, signal: 'SIGINT' }] : [];
  },
});
