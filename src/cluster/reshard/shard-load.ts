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

/** The sum over processes of `shardQueryCounts` (their rates over one second from nothing). */
export const totalShardQueries = async (state: ClusterState): Promise<number[]> =>
  shardRates(new Map(), await shardQueryCounts(state), 1);

/**
 * Statements per second of each logical shard between two samples of
 * `shardQueryCounts`: per process, so that a process that restarted (its
 * counters back at 0) counts what it ran since, and one that is new counts all.
 */
export function shardRates(before: Map<string, number[]>, after: Map<string, number[]>, seconds: number): number[] {
  const rates = new Array<number>(logicalShards).fill(0);
  for (const [name, now] of after) {
    const then = before.get(name);
    now.forEach((n, k) => {
      const prior = then?.[k] ?? 0;
      rates[k] = (rates[k] ?? 0) + (n >= prior ? n - prior : n) / Math.max(seconds, 1e-3);
    });
  }
  return rates;
}
