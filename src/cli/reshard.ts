import type { Command } from 'commander';
import { readShardMap } from '../cluster/components/db-proxy/shard-map.ts';
import { moveShard } from '../cluster/reshard/move.ts';
import { shardStatus, status } from '../cluster/run/status.ts';
import { processesOf } from '../cluster/topology/select.ts';
import { logicalShards, rebalancePlan } from '../ports/shards.ts';
import { pickState } from './cluster.ts';

/** `scaleout reshard …`: the shard map of a sharded topology, and moving logical shards between its clusters. */
export function reshardCommands(program: Command, root: string): void {
  const reshard = program.command('reshard').description('The logical shards of a sharded topology and their moves');

  reshard
    .command('status')
    .description('The shard map: its version, and each cluster with its logical shards and primary')
    .option('--name <name>')
    .option('--json', 'machine-readable output')
    .action(async (o: { name?: string; json?: boolean }) => {
      const state = pickState(root, o.name);
      const shards = await shardStatus(state, await status(state));
      if (!shards) throw new Error(`${state.topology.name} has no shard map (is it sharded, and is etcd up?)`);
      if (o.json) process.stdout.write(`${JSON.stringify(shards, null, 2)}\n`);
      else {
        process.stdout.write(`shard map version ${shards.mapVersion}\n`);
        for (const c of shards.clusters) {
          process.stdout.write(
            `  ${c.name}: ${c.logicalShards.length} logical shards (primary ${c.primary ?? 'none'}): ${c.logicalShards.join(' ')}\n`,
          );
        }
      }
    });

  reshard
    .command('move')
    .description(
      'Move one logical shard to another cluster while the site takes writes: copy by logical replication, fence, catch up, verify, switch the map',
    )
    .requiredOption('--shard <n>', `the logical shard (0 to ${logicalShards - 1})`)
    .requiredOption('--to <cluster>', 'the cluster to move it to (pg-a, pg-b, …)')
    .option('--name <name>')
    .option('--json', 'print the report as JSON')
    .action(async (o: { shard: string; to: string; name?: string; json?: boolean }) => {
      const shard = Number(o.shard);
      if (!Number.isInteger(shard) || shard < 0 || shard >= logicalShards) {
        throw new Error(`--shard: 0 to ${logicalShards - 1}`);
      }
      const state = pickState(root, o.name);
      const report = await moveShard(state, {
        shard,
        to: o.to,
        log: o.json ? undefined : (l) => process.stdout.write(`${l}\n`),
      });
      if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else
        process.stdout.write(
          `moved logical shard ${report.shard} from ${report.from} to ${report.to} in ${report.totalMs} ms (${(report.bytes / 1e6).toFixed(2)} MB; copy ${report.copyMs} ms, writes fenced ${report.fencedMs} ms); map version ${report.mapVersion}\n`,
        );
    });

  reshard
    .command('rebalance')
    .description(
      "Even out the logical shards over the topology's shard clusters (or over --clusters, which empties any left out), moving as few as it can, one move at a time",
    )
    .option('--clusters <names>', 'the clusters to place the shards on, comma-separated (default: every shard cluster)')
    .option('--dry-run', 'print the moves and make none')
    .option('--name <name>')
    .action(async (o: { clusters?: string; dryRun?: boolean; name?: string }) => {
      const state = pickState(root, o.name);
      const [etcd] = processesOf(state.topology, 'etcd');
      const all = processesOf(state.topology, 'dbProxy').flatMap((p) => (p.cluster ? [p.cluster] : []));
      if (!etcd || all.length === 0) throw new Error(`${state.topology.name} is not sharded`);
      const clusters = o.clusters ? o.clusters.split(',').map((c) => c.trim()) : all;
      const unknown = clusters.find((c) => !all.includes(c));
      if (unknown) throw new Error(`no shard cluster named ${unknown} (${all.join(', ')})`);
      const stored = await readShardMap(etcd, state.secrets.etcd);
      if (!stored) throw new Error('no shard map');
      const plan = rebalancePlan(stored.map, clusters);
      process.stdout.write(
        `${plan.length} moves${plan.length ? `: ${plan.map((m) => `${m.shard} ${m.from}→${m.to}`).join(', ')}` : ''}\n`,
      );
      if (o.dryRun) return;
      for (const m of plan) {
        const r = await moveShard(state, { shard: m.shard, to: m.to });
        process.stdout.write(
          `  shard ${r.shard}: ${r.from} → ${r.to}, writes fenced ${r.fencedMs} ms, ${r.totalMs} ms in all\n`,
        );
      }
    });
}
