import { rebalancePlan } from '../../ports/shards.ts';
import { readShardMap } from '../components/db-proxy/shard-map.ts';
import type { ClusterState } from '../run/state.ts';
import { processesOf } from '../topology/select.ts';
import { type MoveReport, moveShard } from './move.ts';

/**
 * The moves of rebalancePlan over `clusters` (the fewest that leave each
 * with ⌊64/M⌋ or ⌈64/M⌉ logical shards), one at a time; each move's report.
 * With dryRun, the plan is told and nothing moves.
 */
export async function rebalanceShards(
  state: ClusterState,
  clusters: string[],
  o: { dryRun?: boolean; log?: (line: string) => void } = {},
): Promise<MoveReport[]> {
  const say = o.log ?? (() => {});
  const [etcd] = processesOf(state.topology, 'etcd');
  if (!etcd) throw new Error(`${state.topology.name} is not sharded`);
  const stored = await readShardMap(etcd, state.secrets.etcd);
  if (!stored) throw new Error('no shard map');
  const plan = rebalancePlan(stored.map, clusters);
  say(`${plan.length} moves${plan.length ? `: ${plan.map((m) => `${m.shard} ${m.from}→${m.to}`).join(', ')}` : ''}`);
  const reports: MoveReport[] = [];
  if (o.dryRun) return reports;
  for (const m of plan) {
    const r = await moveShard(state, { shard: m.shard, to: m.to });
    reports.push(r);
    say(`  shard ${r.shard}: ${r.from} → ${r.to}, writes fenced ${r.fencedMs} ms, ${r.totalMs} ms in all`);
  }
  return reports;
}
