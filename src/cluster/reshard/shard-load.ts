import { logicalShards } from '../../ports/shards.ts';
import type { ClusterState } from '../run/state.ts';
import { processesOf, webMetrics } from '../topology/select.ts';

/**
 * Statements each web server and worker has run per logical shard since it
 * started (`scaleout_shard_queries_total` on its /metrics), by process name.
 * A process that does not answer is left out.
 */
export async function shardQueryCounts(state: ClusterState): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  const processes = [...processesOf(state.topology, 'web'), ...processesOf(state.topology, 'worker')];
  await Promise.all(
    processes.map(async (p) => {
      const { host, port } = webMetrics(p);
      const text = await fetch(`http://${host}:${port}/metrics`, { signal: AbortSignal.timeout(2000) })
        .then((r) => r.text())
        .catch(() => undefined);
      if (text === undefined) return;
      const counts = new Array<number>(logicalShards).fill(0);
      for (const m of text.matchAll(/^scaleout_shard_queries_total\{shard="(\d+)"\} (\d+(?:\.\d+)?)/gm)) {
        counts[Number(m[1])] = Number(m[2]);
      }
      out.set(p.name, counts);
    }),
  );
  return out;
}

/** The sum over processes of `shardQueryCounts`. */
export async function totalShardQueries(state: ClusterState): Promise<number[]> {
  const total = new Array<number>(logicalShards).fill(0);
  for (const counts of (await shardQueryCounts(state)).values()) {
    for (let k = 0; k < logicalShards; k++) total[k] = (total[k] ?? 0) + (counts[k] ?? 0);
  }
  return total;
}

/**
 * Statements per second of each logical shard between two samples of
 * `shardQueryCounts`, per process: one that restarted (its counters back
 * near 0) counts what it ran since; one missing from either sample (new, or
 * its /metrics did not answer once) is left out, since its counters hold
 * everything it ran since it started, not one period's.
 */
export function shardRates(before: Map<string, number[]>, after: Map<string, number[]>, seconds: number): number[] {
  const rates = new Array<number>(logicalShards).fill(0);
  for (const [name, now] of after) {
    const then = before.get(name);
    if (!then) continue;
    now.forEach((n, k) => {
      const prior = then[k] ?? 0;
      rates[k] = (rates[k] ?? 0) + (n >= prior ? n - prior : n) / Math.max(seconds, 1e-3);
    });
  }
  return rates;
}
