import { z } from 'zod';

/**
 * The shard balancer's policy: a logical shard is hot when it runs at least
 * `hotFactor` times the mean of the other shards' statements per second (and
 * at least `minRate`), for `sustainPeriods` periods in a row. It is then
 * moved to the least-loaded cluster, if that cluster can take it without
 * becoming the hottest; then nothing moves for `cooldownSeconds`.
 */
export const shardBalancerPolicy = z.object({
  enabled: z.boolean().default(true),
  hotFactor: z.number().min(1.5).max(1000).default(4),
  /** Statements per second below which no shard is hot, whatever the others do. */
  minRate: z.number().min(0).default(20),
  periodSeconds: z.number().min(1).max(300).default(5),
  sustainPeriods: z.number().int().min(1).max(100).default(3),
  cooldownSeconds: z.number().min(0).max(3600).default(60),
});
export type ShardBalancerPolicy = z.infer<typeof shardBalancerPolicy>;

export interface ShardLoad {
  /** Statements per second of each logical shard over the last period. */
  rates: number[];
  /** The map: each logical shard's cluster. */
  placement: string[];
  /** Every shard cluster, those holding no shard too. */
  clusters: string[];
}

/** What the balancer decided in one period, with its inputs (logged as they are). */
export interface ShardBalancerDecision {
  action: 'move' | 'hold';
  reason: string;
  /** The hottest logical shard, and its rate (statements/s). */
  shard: number;
  rate: number;
  /** The mean rate of the other shards. */
  othersMean: number;
  /** Statements/s per cluster now, and after the move (when it is one). */
  load: Record<string, number>;
  after?: Record<string, number>;
  from: string;
  to?: string;
}

const round = (x: number) => Math.round(x * 10) / 10;
const rounded = (o: Record<string, number>) =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round(v)])) as Record<string, number>;

/**
 * One period's decision: the hottest shard, whether it is hot, and the
 * least-loaded other cluster. A move is made only when it lowers the load of
 * the hottest cluster: moving a hot shard to a cluster that would then carry
 * more than its source does now only moves the hotspot (with two equal
 * clusters and one hot shard, nothing can: a cluster must be added).
 */
export function decideHotShard(input: ShardLoad, policy: ShardBalancerPolicy): ShardBalancerDecision {
  const { rates, placement } = input;
  let shard = 0;
  for (let k = 1; k < rates.length; k++) if ((rates[k] ?? 0) > (rates[shard] ?? 0)) shard = k;
  const rate = rates[shard] ?? 0;
  const othersMean = (rates.reduce((a, b) => a + b, 0) - rate) / Math.max(1, rates.length - 1);
  const load: Record<string, number> = Object.fromEntries(input.clusters.map((c) => [c, 0]));
  rates.forEach((r, k) => {
    const c = placement[k] as string;
    load[c] = (load[c] ?? 0) + r;
  });
  const from = placement[shard] as string;
  const base = { shard, rate: round(rate), othersMean: round(othersMean), load: rounded(load), from };
  if (rate < policy.minRate) {
    return { ...base, action: 'hold', reason: `no hot shard: the busiest runs ${round(rate)} statements/s` };
  }
  if (rate < policy.hotFactor * othersMean) {
    return {
      ...base,
      action: 'hold',
      reason: `no hot shard: the busiest runs ${round(rate / Math.max(othersMean, 1e-9))}× the others' mean (hot from ${policy.hotFactor}×)`,
    };
  }
  const candidates = Object.keys(load).filter((c) => c !== from);
  const to = candidates.sort((a, b) => (load[a] ?? 0) - (load[b] ?? 0) || a.localeCompare(b))[0];
  if (!to) return { ...base, action: 'hold', reason: 'hot, but there is no other cluster to move it to' };
  const after = { ...load, [from]: (load[from] ?? 0) - rate, [to]: (load[to] ?? 0) + rate };
  if ((after[to] ?? 0) >= (load[from] ?? 0)) {
    return {
      ...base,
      action: 'hold',
      to,
      after: rounded(after),
      reason: `hot, but no cluster has room: on ${to} it would carry ${round(after[to] ?? 0)} statements/s, not less than ${from} does now (add a cluster: scaleout reshard add-cluster)`,
    };
  }
  return {
    ...base,
    action: 'move',
    to,
    after: rounded(after),
    reason: `hot: ${round(rate / Math.max(othersMean, 1e-9))}× the others' mean; ${to} is the least loaded`,
  };
}
