import { randomUUID } from 'node:crypto';
import { readShardMap } from '../cluster/components/db-proxy/shard-map.ts';
import type { AddClusterReport } from '../cluster/reshard/add-cluster.ts';
import type { MoveReport } from '../cluster/reshard/move.ts';
import { rebalanceShards } from '../cluster/reshard/rebalance.ts';
import type { ClusterState } from '../cluster/run/index.ts';
import { loadState } from '../cluster/run/state.ts';
import { callSupervisor } from '../cluster/supervisor/client.ts';
import type { ShardBalancerRecord } from '../cluster/supervisor/shard-balancer.ts';
import { processesOf, shardClustersOf } from '../cluster/topology/select.ts';
import { logicalShards, shardOfUsername } from '../ports/shards.ts';
import { Ledger, verifyLedger } from './ledger.ts';
import { defaultRetry, openLoop, raiseLoadGeneratorPriority } from './load.ts';
import { buildScenario } from './scenarios.ts';
import { seed } from './seed.ts';
import { errorCount } from './sweep.ts';
import { startPreset } from './targets.ts';

export interface GrowBenchOptions {
  users: number;
  photos: number;
  /** The write load's rate during the growth (db-writes), req/s. */
  rate: number;
  /** Follow/unfollow requests per second of the one hot user. */
  hotRate: number;
  log: (line: string) => void;
}

export interface GrowBenchResult {
  add: { cluster: string; ms: number; processes: string[] };
  rebalance: {
    moves: number;
    of: number;
    ms: number;
    fencedMs: { p50: number; max: number };
    bytesMoved: number;
    bytesTotal: number;
  };
  load: {
    sent: number;
    /** Requests that failed after their retries. */
    errors: number;
    /** Writes sent again after a 503 or a reset (the same Idempotency-Key). */
    retried: number;
    errorKinds: Record<string, number>;
    /** Seconds from the load's start of each error; the cluster was being added from 8 s for add.ms. */
    errorsAt: number[];
    addWindow: [number, number];
    /** Latency by phase of the load: before (the baseline), while the cluster starts, during the moves, after. */
    phases: { name: string; from: number; to: number; requests: number; p50: number; p99: number }[];
    p50: number;
    p99: number;
    max: number;
  };
  lost: number;
  duplicated: number;
  hot: {
    shard: number;
    /** With three even clusters: the balancer's answer (a hold: nowhere has room). */
    held?: ShardBalancerRecord;
    /** After a fourth, empty cluster joined: the move, and how long from the hot load's start. */
    moved?: ShardBalancerRecord;
    /** From the fourth cluster's joining to the balancer's decision to move (negative: it moved before). */
    msToMove?: number;
    /** Every move the balancer made or tried in the run. */
    moves: { at: string; shard: number; from: string; to?: string; error?: string }[];
    fourth: string;
    load: { sent: number; errors: number };
  };
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function addCluster(state: ClusterState): Promise<AddClusterReport> {
  const answer = await callSupervisor<AddClusterReport & { error?: string }>(state, 'POST', '/shard-clusters', {
    replicas: 1,
  });
  if (answer.status !== 200) throw new Error(answer.body.error ?? `add-cluster: HTTP ${answer.status}`);
  return answer.body;
}

/**
 * On `sharded`: a third cluster added and the shards rebalanced onto it
 * under a write load (the time to add it, the moves, their fenced time, the
 * share of the data moved, the ledger); then one user's follows made hot
 * with the shard balancer on: with three even clusters it holds (nowhere has
 * room), and once a fourth, empty cluster joins it moves the hot shard there.
 */
export async function benchGrow(o: GrowBenchOptions): Promise<GrowBenchResult> {
  o.log(`the load generator runs at nice ${raiseLoadGeneratorPriority()}`);
  const target = await startPreset('sharded', { name: 'grow' });
  try {
    const { state } = target;
    const [etcd] = processesOf(state.topology, 'etcd');
    if (!etcd) throw new Error('no etcd');
    const placement = async () => (await readShardMap(etcd, state.secrets.etcd))?.map.clusters ?? [];
    const manifest = await seed({ target: state.publicUrl, users: o.users, photos: o.photos, follows: 50, seed: 1 });

    // Growth under writes.
    const ledger = new Ledger();
    const latencies: number[] = [];
    const answered: { due: number; ms: number }[] = [];
    const errorsAt: number[] = [];
    const loading = openLoop({
      origin: state.publicUrl,
      rate: o.rate,
      seconds: 75,
      connections: 128,
      next: await buildScenario('db-writes', manifest, ledger, 23),
      // As the site's clients do: a write shed (503 with Retry-After) is sent again with its Idempotency-Key.
      retry: defaultRetry,
      onAnswer: (due, ms, error) => {
        latencies.push(ms);
        answered.push({ due, ms });
        if (error) errorsAt.push(Math.round(due * 10) / 10);
      },
    });
    await sleep(8000);
    const addStarted = 8;
    const added = await addCluster(state);
    o.log(`added ${added.cluster} in ${added.ms} ms`);
    const rebalanceStarted = performance.now();
    const moves: MoveReport[] = await rebalanceShards(
      loadState(state.runDir),
      shardClustersOf(loadState(state.runDir).topology),
      {
        log: o.log,
      },
    );
    const rebalanceMs = Math.round(performance.now() - rebalanceStarted);
    // The load's phases, in seconds from its start: the baseline before, the cluster starting, the moves, after.
    const addEnd = addStarted + added.ms / 1000;
    const movesEnd = addEnd + rebalanceMs / 1000;
    const load = await loading;
    const verified = await verifyLedger(ledger, manifest, state.publicUrl);
    o.log(
      `writes: ${load.sent} sent, ${errorCount(load)} errors; ledger: ${verified.lost.length} lost, ${verified.duplicated.length} duplicated`,
    );
    const fenced = moves.map((m) => m.fencedMs);
    // The data moved against all of it: every shard's size, from the moves' own measure and the clusters'.
    const bytesMoved = moves.reduce((a, m) => a + m.bytes, 0);
    const bytesTotal = Math.round((bytesMoved / Math.max(1, moves.length)) * logicalShards);

    // The hot user: one account following and unfollowing others, fast.
    const hotUser = manifest.users[3] as string;
    const hotShard = shardOfUsername(hotUser);
    const token = manifest.tokens[3] as string;
    const others = manifest.users.filter((u) => u !== hotUser);
    await callSupervisor(state, 'POST', '/shard-balancer', {
      enabled: true,
      periodSeconds: 2,
      sustainPeriods: 2,
      cooldownSeconds: 30,
    });
    const decisions = async () =>
      (await callSupervisor<{ decisions: ShardBalancerRecord[] }>(state, 'GET', '/shard-balancer')).body.decisions;
    // The rest of the site keeps writing meanwhile: the clusters' load is not the hot shard's alone.
    const background = openLoop({
      origin: state.publicUrl,
      rate: o.rate,
      seconds: 60,
      connections: 64,
      next: await buildScenario('db-writes', manifest, new Ledger(), 29),
      retry: defaultRetry,
    });
    const hotLoad = openLoop({
      origin: state.publicUrl,
      rate: o.hotRate,
      seconds: 60,
      connections: 16,
      next: (i) => ({
        method: i % 2 === 0 ? 'PUT' : 'DELETE',
        path: `/api/v1/users/${others[Math.floor(i / 2) % others.length]}/follow`,
        headers: { authorization: `Bearer ${token}`, 'idempotency-key': randomUUID() },
      }),
      retry: defaultRetry,
    });
    await sleep(15_000);
    const held = (await decisions()).findLast((d) => d.shard === hotShard && d.action === 'hold');
    o.log(`hot shard ${hotShard} with three even clusters: ${held?.reason ?? 'no decision about it'}`);
    const fourth = await addCluster(state);
    const joinedAt = Date.now();
    o.log(`added ${fourth.cluster} (empty) in ${fourth.ms} ms`);
    let moved: ShardBalancerRecord | undefined;
    const deadline = Date.now() + 40_000;
    while (!moved && Date.now() < deadline) {
      await sleep(500);
      moved = (await decisions()).find(
        (d) => d.shard === hotShard && d.moved !== undefined && Date.parse(d.at) >= joinedAt - fourth.ms,
      );
    }
    const msToMove = moved ? Date.parse(moved.at) - joinedAt : undefined;
    const hotResult = await hotLoad;
    await background;
    const movesOfHot = (await decisions()).filter((d) => d.moved !== undefined || d.error !== undefined);
    await callSupervisor(state, 'POST', '/shard-balancer', { enabled: false });
    o.log(
      moved
        ? `hot shard ${hotShard} moved ${moved.from} → ${moved.to} (${moved.reason}); now on ${(await placement())[hotShard]}`
        : `hot shard ${hotShard} was not moved within 40 s`,
    );
    return {
      add: { cluster: added.cluster, ms: added.ms, processes: added.processes },
      rebalance: {
        moves: moves.length,
        of: logicalShards,
        ms: rebalanceMs,
        fencedMs: { p50: quantile(fenced, 0.5), max: Math.max(0, ...fenced) },
        bytesMoved,
        bytesTotal,
      },
      load: {
        sent: load.sent,
        errors: errorCount(load),
        retried: load.retries,
        errorKinds: load.errors,
        errorsAt: errorsAt.sort((a, b) => a - b),
        phases: (
          [
            ['before', 0, addStarted],
            ['cluster starting', addStarted, addEnd],
            ['moves', addEnd, movesEnd],
            ['after', movesEnd, 75],
          ] as const
        ).map(([name, from, to]) => {
          const ms = answered.filter((a) => a.due >= from && a.due < to).map((a) => a.ms);
          return {
            name,
            from: Math.round(from * 10) / 10,
            to: Math.round(to * 10) / 10,
            requests: ms.length,
            p50: Math.round(quantile(ms, 0.5)),
            p99: Math.round(quantile(ms, 0.99)),
          };
        }),
        addWindow: [addStarted, Math.round((addStarted + added.ms / 1000) * 10) / 10],
        p50: Math.round(quantile(latencies, 0.5)),
        p99: Math.round(quantile(latencies, 0.99)),
        max: Math.round(Math.max(0, ...latencies)),
      },
      lost: verified.lost.length,
      duplicated: verified.duplicated.length,
      hot: {
        shard: hotShard,
        held,
        moved,
        msToMove,
        moves: movesOfHot.map((d) => ({ at: d.at, shard: d.shard, from: d.from, to: d.to, error: d.error })),
        fourth: fourth.cluster,
        load: { sent: hotResult.sent, errors: errorCount(hotResult) },
      },
    };
  } finally {
    await target.stop();
  }
}

/** Errors per 5 s of the load: "5–10 s: 7, 20–25 s: 31". */
const byFiveSeconds = (at: number[]) => {
  const buckets = new Map<number, number>();
  for (const t of at) buckets.set(Math.floor(t / 5) * 5, (buckets.get(Math.floor(t / 5) * 5) ?? 0) + 1);
  return [...buckets].map(([from, n]) => `${from}–${from + 5} s: ${n}`).join(', ');
};

export function growSummary(r: GrowBenchResult): string {
  const m = r.hot.moved;
  return [
    '## Growing sharded: a third cluster under writes, and the hot shard',
    '',
    `add-cluster: ${r.add.cluster} started in **${(r.add.ms / 1000).toFixed(1)} s** (${r.add.processes.join(', ')}); rebalance: **${r.rebalance.moves} of ${r.rebalance.of}** logical shards moved, each to ${r.add.cluster}, in ${(r.rebalance.ms / 1000).toFixed(1)} s; writes fenced p50 ${r.rebalance.fencedMs.p50} ms, max ${r.rebalance.fencedMs.max} ms.`,
    '',
    `Under db-writes (shed writes sent again with their Idempotency-Key: ${r.load.retried}): ${r.load.sent} requests, ${r.load.errors} errors (${JSON.stringify(r.load.errorKinds)}; ${byFiveSeconds(r.load.errorsAt) || 'none'}; the cluster was starting from ${r.load.addWindow[0]} to ${r.load.addWindow[1]} s); latency p50 ${r.load.p50} ms, p99 ${r.load.p99} ms, max ${r.load.max} ms; ledger: **${r.lost} lost, ${r.duplicated} duplicated**.`,
    '',
    '| phase of the load | seconds | requests | p50 ms | p99 ms |',
    '|---|---|---|---|---|',
    ...r.load.phases.map((p) => `| ${p.name} | ${p.from}–${p.to} | ${p.requests} | ${p.p50} | ${p.p99} |`),
    '',
    `The hot shard (${r.hot.shard}: one user's follows and unfollows, ${r.hot.load.sent} requests, ${r.hot.load.errors} errors): with three even clusters the balancer held: "${r.hot.held?.reason ?? 'no decision'}"${r.hot.held ? ` (its rate ${r.hot.held.rate}/s, the others' mean ${r.hot.held.othersMean}/s; load ${JSON.stringify(r.hot.held.load)})` : ''}. ${m ? `After a fourth, empty cluster (${r.hot.fourth}) joined, it moved it ${m.from} → ${m.to} **${((r.hot.msToMove ?? 0) / 1000).toFixed(1)} s** after the join (fenced ${m.moved?.fencedMs} ms); load before ${JSON.stringify(m.load)}, after ${JSON.stringify(m.after)}.` : `It was not moved within 40 s of the fourth cluster (${r.hot.fourth}) joining.`} Every move the balancer made in the run: ${r.hot.moves.map((x) => `${x.at.slice(11, 19)} shard ${x.shard} ${x.from} → ${x.to}${x.error ? ` (failed: ${x.error})` : ''}`).join('; ') || 'none'}.`,
  ].join('\n');
}
