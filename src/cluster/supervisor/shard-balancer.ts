import type { Logger } from 'pino';
import client from 'prom-client';
import { readShardMap } from '../components/db-proxy/shard-map.ts';
import { decideHotShard, type ShardBalancerDecision } from '../reshard/hot-shard.ts';
import { moveShard } from '../reshard/move.ts';
import { shardQueryCounts, shardRates } from '../reshard/shard-load.ts';
import { loadState } from '../run/state.ts';
import { processesOf, shardClustersOf } from '../topology/select.ts';

export interface ShardBalancerRecord extends ShardBalancerDecision {
  at: string;
  /** Periods in a row the same shard was found hot and movable. */
  streak: number;
  /** The move made, when it was one. */
  moved?: { fencedMs: number; totalMs: number; mapVersion: number };
  error?: string;
}

export interface ShardBalancer {
  decisions(): ShardBalancerRecord[];
  stop(): void;
}

/**
 * The shard balancer: every policy period it reads the statements per
 * logical shard from every web server and worker, decides (decideHotShard),
 * and once the same shard has been hot and movable for `sustainPeriods`
 * periods, moves it with the same move as `scaleout reshard move`, in the
 * supervisor's data lane (one data change at a time), then waits out the
 * cooldown. Every move, and every change of what it holds for, is logged
 * with its inputs. It does nothing while the policy is absent or off.
 */
export function startShardBalancer(o: {
  runDir: string;
  logger: Logger;
  registry: client.Registry;
  exclusiveData<T>(name: string, fn: () => Promise<T>): Promise<T>;
  busy(): boolean;
}): ShardBalancer | undefined {
  if (shardClustersOf(loadState(o.runDir).topology).length === 0) return undefined;
  const hottest = new client.Gauge({
    name: 'scaleout_shard_balancer_hottest_rate',
    help: "The busiest logical shard's statements per second, and the mean of the others'",
    labelNames: ['of'],
    registers: [o.registry],
  });
  const moves = new client.Counter({
    name: 'scaleout_shard_balancer_moves_total',
    help: 'Logical shards the shard balancer moved on its own',
    registers: [o.registry],
  });
  const records: ShardBalancerRecord[] = [];
  let sample: { at: number; counts: Map<string, number[]> } | undefined;
  let streak = { shard: -1, count: 0 };
  let lastMoveAt = 0;
  let lastPeriodAt = 0;
  let lastReason = '';
  let running = false;

  const keep = (r: ShardBalancerRecord) => {
    records.push(r);
    if (records.length > 50) records.shift();
  };
  const tick = async () => {
    const state = loadState(o.runDir);
    const policy = state.topology.options.shardBalancer;
    if (!policy?.enabled) {
      sample = undefined;
      return;
    }
    if (Date.now() - lastPeriodAt < policy.periodSeconds * 1000) return;
    lastPeriodAt = Date.now();
    const counts = await shardQueryCounts(state);
    const now = Date.now();
    const previous = sample;
    sample = { at: now, counts };
    if (!previous) return;
    const [etcd] = processesOf(state.topology, 'etcd');
    const stored = etcd && (await readShardMap(etcd, state.secrets.etcd));
    if (!stored) return;
    const rates = shardRates(previous.counts, counts, (now - previous.at) / 1000);
    const decision = decideHotShard(
      { rates, placement: stored.map.clusters, clusters: shardClustersOf(state.topology) },
      policy,
    );
    hottest.set({ of: 'hottest' }, decision.rate);
    hottest.set({ of: 'others_mean' }, decision.othersMean);
    streak =
      decision.action === 'move'
        ? { shard: decision.shard, count: streak.shard === decision.shard ? streak.count + 1 : 1 }
        : { shard: -1, count: 0 };
    const record: ShardBalancerRecord = { ...decision, at: new Date(now).toISOString(), streak: streak.count };
    const cooling = now - lastMoveAt < policy.cooldownSeconds * 1000;
    if (decision.action !== 'move' || streak.count < policy.sustainPeriods || cooling || o.busy()) {
      // A hold is logged when its reason changes, not every period.
      const reason = cooling && decision.action === 'move' ? 'cooldown' : decision.reason.replace(/[\d.]+/g, '#');
      if (reason !== lastReason) {
        o.logger.info({ shardBalancer: record }, `shard balancer holds: ${decision.reason}`);
        lastReason = reason;
      }
      keep(record);
      return;
    }
    lastReason = '';
    o.logger.info(
      { shardBalancer: record },
      `hot shard ${decision.shard}: moving it from ${decision.from} to ${decision.to}`,
    );
    try {
      const report = await o.exclusiveData(`move hot shard ${decision.shard}`, () =>
        moveShard(loadState(o.runDir), { shard: decision.shard, to: decision.to as string }),
      );
      record.moved = { fencedMs: report.fencedMs, totalMs: report.totalMs, mapVersion: report.mapVersion };
      moves.inc();
      o.logger.info({ shardBalancer: record }, `hot shard ${decision.shard} moved to ${decision.to}`);
    } catch (err) {
      record.error = (err as Error).message;
      o.logger.warn({ shardBalancer: record }, `hot shard ${decision.shard} was not moved: ${record.error}`);
    }
    lastMoveAt = Date.now();
    streak = { shard: -1, count: 0 };
    // The move's own statements are not the shard's load: sample afresh.
    sample = undefined;
    keep(record);
  };
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    tick()
      .catch((err) => o.logger.warn({ err: (err as Error).message }, 'shard balancer: no decision this period'))
      .finally(() => {
        running = false;
      });
  }, 1000);
  timer.unref();
  return {
    decisions: () => [...records],
    stop: () => clearInterval(timer),
  };
}
