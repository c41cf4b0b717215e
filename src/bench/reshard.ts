import type pg from 'pg';
import { primaryClient } from '../cluster/components/db-proxy/query.ts';
import { readShardMap } from '../cluster/components/db-proxy/shard-map.ts';
import { type MoveReport, moveShard } from '../cluster/reshard/move.ts';
import { totalShardQueries } from '../cluster/reshard/shard-load.ts';
import type { ClusterState } from '../cluster/run/index.ts';
import { processesOf } from '../cluster/topology/select.ts';
import { logicalShards, shardOfUsername, shardSchema } from '../ports/shards.ts';
import { Ledger, verifyLedger } from './ledger.ts';
import { openLoop, raiseLoadGeneratorPriority } from './load.ts';
import { buildScenario } from './scenarios.ts';
import { seed } from './seed.ts';
import { errorCount } from './sweep.ts';
import { startPreset } from './targets.ts';

export interface ReshardBenchOptions {
  users: number;
  photos: number;
  /** Moves during the write load (each a shard holding seeded users, to the other cluster). */
  moves: number;
  /** The write load's rate (db-writes), req/s. */
  rate: number;
  /** Seconds of `mixed` and of `celebrity` whose statements per shard are counted. */
  skewSeconds: number;
  log: (line: string) => void;
}

export interface ReshardBenchResult {
  moves: MoveReport[];
  pauseMs: { p50: number; p99: number; max: number };
  /** Each move's whole duration over its size. */
  msPerMb: number[];
  load: { sent: number; errors: number; errorKinds: Record<string, number>; p50: number; p99: number; max: number };
  lost: number;
  duplicated: number;
  rows: { perShard: number[]; maxOverMean: number };
  queries: { mixed: { perShard: number[]; maxOverMean: number }; celebrity: CelebrityLoad };
}

export interface CelebrityLoad {
  perShard: number[];
  celebrityShard: number;
  /** The celebrity's shard's statements over the mean of the others'. */
  celebrityOverMean: number;
  maxOverMean: number;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
};
const maxOverMean = (xs: number[]) => {
  const mean = xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return mean > 0 ? Math.round((Math.max(...xs) / mean) * 100) / 100 : 0;
};

/** Rows per logical shard (users, photos, follows, likes and their copies), counted in each cluster's schemas. */
async function shardRows(state: ClusterState, map: string[]): Promise<number[]> {
  const out = new Array<number>(logicalShards).fill(0);
  const clusters = [...new Set(map)];
  for (const cluster of clusters) {
    const c: pg.Client = await primaryClient(state, cluster);
    try {
      for (let k = 0; k < logicalShards; k++) {
        if (map[k] !== cluster) continue;
        const s = shardSchema(k);
        const { rows } = await c.query<{ n: number }>(
          `SELECT (SELECT count(*) FROM ${s}.users) + (SELECT count(*) FROM ${s}.photos) + (SELECT count(*) FROM ${s}.follows)
                + (SELECT count(*) FROM ${s}.followers) + (SELECT count(*) FROM ${s}.likes) + (SELECT count(*) FROM ${s}.photo_likes) AS n`,
        );
        out[k] = Number(rows[0]?.n ?? 0);
      }
    } finally {
      await c.end();
    }
  }
  return out;
}

const delta = (a: number[], b: number[]) => a.map((x, k) => x - (b[k] ?? 0));

/**
 * On `sharded`: moves under a write load (each move's fenced time, its
 * duration per MB, and the ledger's lost and duplicated writes), then the
 * skew: rows per logical shard after the seed, statements per shard under
 * `mixed`, and under `celebrity` (Zipf reads of one account and likes).
 */
export async function benchReshard(o: ReshardBenchOptions): Promise<ReshardBenchResult> {
  o.log(`the load generator runs at nice ${raiseLoadGeneratorPriority()}`);
  const target = await startPreset('sharded', { name: 'reshard' });
  try {
    const { state } = target;
    const [etcd] = processesOf(state.topology, 'etcd');
    if (!etcd) throw new Error('no etcd');
    const mapNow = async () => (await readShardMap(etcd, state.secrets.etcd))?.map.clusters ?? [];
    const manifest = await seed({ target: state.publicUrl, users: o.users, photos: o.photos, follows: 50, seed: 1 });
    const rowsAfterSeed = await shardRows(state, await mapNow());

    // Moves under writes: shards that hold seeded users, each to the other cluster.
    const ledger = new Ledger();
    const next = await buildScenario('db-writes', manifest, ledger, 13);
    const candidates = [...new Set(manifest.users.map((u) => shardOfUsername(u)))];
    const seconds = 20 + o.moves * 12;
    const latencies: number[] = [];
    const loading = openLoop({
      origin: state.publicUrl,
      rate: o.rate,
      seconds,
      connections: 128,
      next,
      onAnswer: (_due, ms) => latencies.push(ms),
    });
    await new Promise((r) => setTimeout(r, 8000));
    const moves: MoveReport[] = [];
    for (let i = 0; i < o.moves; i++) {
      const map = await mapNow();
      const shard = candidates[i % candidates.length] as number;
      const to = map[shard] === 'pg-a' ? 'pg-b' : 'pg-a';
      const r = await moveShard(state, { shard, to });
      o.log(
        `move ${i + 1}: ${shardSchema(shard)} ${r.from} → ${r.to}, ${(r.bytes / 1e6).toFixed(2)} MB, copy ${r.copyMs} ms, fenced ${r.fencedMs} ms, total ${r.totalMs} ms`,
      );
      moves.push(r);
      await new Promise((res) => setTimeout(res, 4000));
    }
    const load = await loading;
    const verified = await verifyLedger(ledger, manifest, state.publicUrl);
    o.log(
      `writes: ${load.sent} sent, ${errorCount(load)} errors; ledger: ${verified.lost.length} lost, ${verified.duplicated.length} duplicated`,
    );

    // Skew: statements per shard under mixed, then under celebrity.
    const q0 = await totalShardQueries(state);
    await openLoop({
      origin: state.publicUrl,
      rate: 150,
      seconds: o.skewSeconds,
      connections: 128,
      next: await buildScenario('mixed', manifest, new Ledger(), 17),
    });
    const q1 = await totalShardQueries(state);
    await openLoop({
      origin: state.publicUrl,
      rate: 150,
      seconds: o.skewSeconds,
      connections: 128,
      next: await buildScenario('celebrity', manifest, new Ledger(), 19),
    });
    const q2 = await totalShardQueries(state);
    const mixed = delta(q1, q0);
    const celebrity = delta(q2, q1);
    const celebrityShard = shardOfUsername(manifest.celebrity);
    const others = celebrity.filter((_, k) => k !== celebrityShard);
    const othersMean = others.reduce((a, b) => a + b, 0) / Math.max(1, others.length);
    const fenced = moves.map((m) => m.fencedMs);
    return {
      moves,
      pauseMs: { p50: quantile(fenced, 0.5), p99: quantile(fenced, 0.99), max: Math.max(...fenced) },
      msPerMb: moves.map((m) => Math.round(m.totalMs / Math.max(0.001, m.bytes / 1e6))),
      load: {
        sent: load.sent,
        errors: errorCount(load),
        errorKinds: load.errors,
        p50: quantile(latencies, 0.5),
        p99: quantile(latencies, 0.99),
        max: Math.round(Math.max(...latencies)),
      },
      lost: verified.lost.length,
      duplicated: verified.duplicated.length,
      rows: { perShard: rowsAfterSeed, maxOverMean: maxOverMean(rowsAfterSeed) },
      queries: {
        mixed: { perShard: mixed, maxOverMean: maxOverMean(mixed) },
        celebrity: {
          perShard: celebrity,
          celebrityShard,
          celebrityOverMean:
            othersMean > 0 ? Math.round(((celebrity[celebrityShard] ?? 0) / othersMean) * 100) / 100 : 0,
          maxOverMean: maxOverMean(celebrity),
        },
      },
    };
  } finally {
    await target.stop();
  }
}

export function reshardSummary(r: ReshardBenchResult): string {
  return [
    '## Online resharding on sharded (two Patroni clusters, 64 logical shards)',
    '',
    `${r.moves.length} moves under db-writes: writes fenced p50 **${r.pauseMs.p50} ms**, p99 ${r.pauseMs.p99} ms, max ${r.pauseMs.max} ms; the load's latency p50 ${r.load.p50} ms, p99 ${r.load.p99} ms, max ${r.load.max} ms; ${r.load.errors} errors of ${r.load.sent} (${JSON.stringify(r.load.errorKinds)}); ledger: **${r.lost} lost, ${r.duplicated} duplicated**.`,
    '',
    '| move | from → to | MB | copy ms | catch-up ms | fenced ms | total ms | ms per MB | attempts |',
    '|---|---|---|---|---|---|---|---|---|',
    ...r.moves.map(
      (m, i) =>
        `| ${shardSchema(m.shard)} | ${m.from} → ${m.to} | ${(m.bytes / 1e6).toFixed(2)} | ${m.copyMs} | ${m.catchUpMs} | ${m.fencedMs} | ${m.totalMs} | ${r.msPerMb[i]} | ${m.attempts} |`,
    ),
    '',
    `Skew: rows per logical shard after the seed, max/mean **${r.rows.maxOverMean}**; statements per shard under mixed, max/mean **${r.queries.mixed.maxOverMean}**; under celebrity, the celebrity's shard (${shardSchema(r.queries.celebrity.celebrityShard)}) ran **${r.queries.celebrity.celebrityOverMean}×** the mean of the others (max/mean ${r.queries.celebrity.maxOverMean}).`,
  ].join('\n');
}
