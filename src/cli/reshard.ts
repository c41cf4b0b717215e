import type { Command } from 'commander';
import type { AddClusterReport } from '../cluster/reshard/add-cluster.ts';
import type { ShardBalancerPolicy } from '../cluster/reshard/hot-shard.ts';
import { moveShard } from '../cluster/reshard/move.ts';
import { rebalanceShards } from '../cluster/reshard/rebalance.ts';
import { shardStatus, status } from '../cluster/run/status.ts';
import { callSupervisor } from '../cluster/supervisor/client.ts';
import type { ShardBalancerRecord } from '../cluster/supervisor/shard-balancer.ts';
import { processesOf, shardClustersOf } from '../cluster/topology/select.ts';
import { logicalShards } from '../ports/shards.ts';
import { pickState } from './cluster.ts';

const say = (line: string) => process.stdout.write(`${line}\n`);

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
    .command('add-cluster')
    .description(
      'Add a Patroni cluster (a primary and its replicas, its proxy, an exporter per node) to a running sharded topology; with --rebalance, then move it its share of the logical shards',
    )
    .option('--replicas <n>', 'replicas of the new cluster (0 to 2)', '1')
    .option('--rebalance', 'then even out the logical shards over every cluster, the new one with them')
    .option('--name <name>')
    .option('--json', 'print the report as JSON')
    .action(async (o: { replicas: string; rebalance?: boolean; name?: string; json?: boolean }) => {
      const replicas = Number(o.replicas);
      if (!Number.isInteger(replicas) || replicas < 0 || replicas > 2) throw new Error('--replicas: 0 to 2');
      let state = pickState(root, o.name);
      if (shardClustersOf(state.topology).length === 0) throw new Error(`${state.topology.name} is not sharded`);
      const answer = await callSupervisor<AddClusterReport & { log?: string[]; error?: string }>(
        state,
        'POST',
        '/shard-clusters',
        { replicas },
      );
      if (answer.status !== 200) throw new Error(answer.body.error ?? `the supervisor answered ${answer.status}`);
      const added = answer.body;
      if (!o.json) {
        for (const line of added.log ?? []) process.stdout.write(`${line}\n`);
        process.stdout.write(`added shard cluster ${added.cluster} in ${added.ms} ms: ${added.processes.join(', ')}\n`);
      }
      const moves = [];
      if (o.rebalance) {
        state = pickState(root, state.topology.name);
        moves.push(
          ...(await rebalanceShards(state, shardClustersOf(state.topology), { log: o.json ? undefined : say })),
        );
      }
      if (o.json) process.stdout.write(`${JSON.stringify({ ...added, log: undefined, moves }, null, 2)}\n`);
    });

  reshard
    .command('auto')
    .description(
      'The shard balancer: a logical shard hot for a while (its statements per second over the others’ mean) is moved to the least-loaded cluster on its own; without options, its policy and last decisions',
    )
    .option('--on', 'turn it on')
    .option('--off', 'turn it off')
    .option('--hot-factor <x>', "hot from this many times the other shards' mean rate (default 4)")
    .option('--min-rate <n>', 'no shard is hot below this many statements per second (default 20)')
    .option('--period <s>', 'seconds between decisions (default 5)')
    .option('--sustain <n>', 'periods in a row a shard must be hot before it moves (default 3)')
    .option('--cooldown <s>', 'seconds after a move before the next (default 60)')
    .option('--name <name>')
    .option('--json', 'machine-readable output')
    .action(
      async (o: {
        on?: boolean;
        off?: boolean;
        hotFactor?: string;
        minRate?: string;
        period?: string;
        sustain?: string;
        cooldown?: string;
        name?: string;
        json?: boolean;
      }) => {
        if (o.on && o.off) throw new Error('--on or --off, not both');
        const state = pickState(root, o.name);
        const change = Object.fromEntries(
          Object.entries({
            enabled: o.on ? true : o.off ? false : undefined,
            hotFactor: o.hotFactor,
            minRate: o.minRate,
            periodSeconds: o.period,
            sustainPeriods: o.sustain,
            cooldownSeconds: o.cooldown,
          })
            .filter(([, v]) => v !== undefined)
            .map(([k, v]) => [k, typeof v === 'string' ? Number(v) : v]),
        );
        const answer =
          Object.keys(change).length > 0
            ? await callSupervisor<Record<string, unknown>>(state, 'POST', '/shard-balancer', change)
            : await callSupervisor<Record<string, unknown>>(state, 'GET', '/shard-balancer');
        if (answer.status !== 200)
          throw new Error(String(answer.body.error ?? `the supervisor answered ${answer.status}`));
        if (o.json) {
          process.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
          return;
        }
        const policy = answer.body.shardBalancer as ShardBalancerPolicy | null;
        process.stdout.write(
          policy
            ? `shard balancer ${policy.enabled ? 'on' : 'off'}: hot from ${policy.hotFactor}× the others' mean and ${policy.minRate} statements/s, for ${policy.sustainPeriods} periods of ${policy.periodSeconds} s; ${policy.cooldownSeconds} s between moves\n`
            : 'shard balancer off (no policy)\n',
        );
        const decisions = (answer.body.decisions ?? []) as ShardBalancerRecord[];
        // The last moves (made or failed), and the last few decisions, in order.
        const moves = decisions.filter((d) => d.moved || d.error).slice(-5);
        const shownDecisions = decisions.filter(
          (d) => moves.includes(d) || decisions.indexOf(d) >= decisions.length - 5,
        );
        for (const d of shownDecisions) {
          process.stdout.write(
            `  ${d.at} ${d.action} shard ${d.shard} (${d.rate}/s, others ${d.othersMean}/s) on ${d.from}${d.to ? ` → ${d.to}` : ''}: ${d.reason}${d.moved ? `; moved, fenced ${d.moved.fencedMs} ms` : ''}${d.error ? `; failed: ${d.error}` : ''}\n`,
          );
        }
      },
    );

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
      const all = shardClustersOf(state.topology);
      if (!etcd || all.length === 0) throw new Error(`${state.topology.name} is not sharded`);
      const clusters = o.clusters ? o.clusters.split(',').map((c) => c.trim()) : all;
      const unknown = clusters.find((c) => !all.includes(c));
      if (unknown) throw new Error(`no shard cluster named ${unknown} (${all.join(', ')})`);
      await rebalanceShards(state, clusters, { dryRun: o.dryRun, log: say });
    });
}
