import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withPrimary } from '../../src/cluster/components/db-proxy/query.ts';
import { readShardMap } from '../../src/cluster/components/db-proxy/shard-map.ts';
import { waitUntil } from '../../src/cluster/process.ts';
import type { ClusterState } from '../../src/cluster/run/index.ts';
import { loadState } from '../../src/cluster/run/state.ts';
import { shardCluster } from '../../src/cluster/topology/presets.ts';
import { firstDataCenter, planOf, processesOf, shardClustersOf } from '../../src/cluster/topology/select.ts';
import { logicalShards, rebalancePlan, shardOfUsername, shardSchema } from '../../src/ports/shards.ts';
import { Client, uniqueName } from '../support/app.ts';
import { startTopology, steadyLoad } from '../support/cluster.ts';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..', '..');

/**
 * Growing a sharded topology while it takes writes: a third Patroni cluster
 * added by `scaleout reshard add-cluster`, the shards rebalanced onto it,
 * and the shard balancer moving a hot shard to a new cluster on its own.
 */
describe('sharded, grown: a cluster added to the running topology, and hot shards moved on their own', () => {
  let topo: Awaited<ReturnType<typeof startTopology>>;
  const cli = (...args: string[]) =>
    run(process.execPath, [path.join(root, 'bin/scaleout.js'), ...args, '--name', topo.state.topology.name], {
      env: { ...process.env, SCALEOUT_RUN_ROOT: topo.runRoot },
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
    });
  const latest = (): ClusterState => loadState(topo.state.runDir);
  const placement = async () => {
    const s = latest();
    return (await readShardMap(processesOf(s.topology, 'etcd')[0] as never, s.secrets.etcd))?.map.clusters ?? [];
  };
  /** The rows of a query on a shard cluster's primary (superuser, through its proxy). */
  const onCluster = (cluster: string, text: string, values: unknown[] = []) =>
    withPrimary(latest(), cluster, async (c) => (await c.query(text, values)).rows);
  const users: Client[] = [];
  const names: string[] = [];

  beforeAll(async () => {
    topo = await startTopology('sharded');
    for (let i = 0; i < 20; i++) {
      const c = new Client(topo.url);
      const name = await c.signUp(uniqueName('g'));
      await c.logIn(name);
      users.push(c);
      names.push(name);
    }
  }, 300_000);
  afterAll(async () => {
    if (topo) expect(await topo.stop()).toEqual([]);
  }, 120_000);

  it('add-cluster under writes: pg-c joins, a third of the shards move to it and only to it, 0 writes fail or are lost', async () => {
    const before = await placement();
    const clustersBefore = shardClustersOf(latest().topology);
    // Follows between distinct pairs: each lands on the follower's shard, its copy on the followee's.
    const pairs = names.flatMap((_, a) => names.map((_, b) => [a, b] as const)).filter(([a, b]) => a !== b);
    const acknowledged: (readonly [number, number])[] = [];
    const load = steadyLoad(
      (i) => {
        const [a, b] = pairs[i % pairs.length] as readonly [number, number];
        return {
          url: `${topo.url}/api/v1/users/${names[b]}/follow`,
          init: { method: 'PUT', headers: { authorization: `Bearer ${users[a]?.token}` } },
        };
      },
      {
        ratePerSecond: 8,
        ms: Math.min(pairs.length, 360) * 125,
        onOk: (i) => acknowledged.push(pairs[i % pairs.length] as readonly [number, number]),
      },
    );
    const out = await cli('reshard', 'add-cluster', '--rebalance', '--json');
    const added = JSON.parse(out.stdout) as {
      cluster: string;
      processes: string[];
      moves: { shard: number; from: string; to: string; fencedMs: number }[];
    };
    const report = await load;
    expect(clustersBefore).not.toContain(added.cluster);
    expect(added.processes).toEqual(
      expect.arrayContaining([`${added.cluster}-1`, `${added.cluster}-2`, `db-proxy-${added.cluster.slice(3)}`]),
    );
    // The fewest moves that even the shards out: on two even clusters, a third of them (21 of 64), each to the
    // new cluster and none between the old ones.
    const plan = rebalancePlan({ version: 0, clusters: before }, [...clustersBefore, added.cluster]);
    expect(added.moves.map((m) => [m.shard, m.from, m.to])).toEqual(plan.map((m) => [m.shard, m.from, m.to]));
    expect(added.moves.length).toBeLessThanOrEqual(Math.ceil(logicalShards / (clustersBefore.length + 1)));
    const after = await placement();
    expect(after.filter((c) => c === added.cluster)).toHaveLength(added.moves.length);
    // The new cluster has the moved shards' schemas, and the old ones no longer do.
    const schemas = (await onCluster(added.cluster, `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'shard\\_%'`))
      .map((r) => r.nspname as string)
      .sort();
    expect(schemas).toEqual(added.moves.map((m) => shardSchema(m.shard)).sort());
    console.log(
      `add-cluster: ${added.cluster} took ${added.moves.length} of ${logicalShards} shards, fenced max ${Math.max(...added.moves.map((m) => m.fencedMs))} ms; ${report.sent} follows sent, ${report.shed} shed and sent again`,
    );
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(report.sent);
    // Every acknowledged follow is where the map says the follower's shard is now, and its copy on the followee's.
    for (const [a] of names.entries()) {
      const k = shardOfUsername(names[a] as string);
      const expected = acknowledged.filter(([x]) => x === a).length;
      const rows = await onCluster(
        after[k] as string,
        `SELECT count(*)::int AS n FROM ${shardSchema(k)}.follows f JOIN ${shardSchema(k)}.users u ON u.id = f.follower_id WHERE u.username = $1`,
        [names[a]],
      );
      expect(rows[0]?.n, `follows of ${names[a]}`).toBe(expected);
    }
    // Every process of the new cluster is healthy in status.
    const status = JSON.parse((await cli('status', '--json')).stdout) as {
      processes: { name: string; health: string }[];
    };
    for (const name of added.processes) {
      expect(status.processes.find((p) => p.name === name)?.health, name).toBe('healthy');
    }
  }, 240_000);

  it('the shard balancer moves a hot shard to the least-loaded cluster on its own, and logs the decision with its inputs', async () => {
    const grown = JSON.parse((await cli('reshard', 'add-cluster', '--json')).stdout) as { cluster: string };
    const on = await cli('reshard', 'auto', '--on', '--period', '2', '--sustain', '2', '--cooldown', '5');
    expect(on.stdout).toMatch(/shard balancer on: hot from 4× the others' mean/);
    // One user following and unfollowing the others over and over: every edge on their shard, each copy on a followee's.
    const hot = 0;
    const shard = shardOfUsername(names[hot] as string);
    const from = (await placement())[shard];
    const load = steadyLoad(
      (i) => ({
        url: `${topo.url}/api/v1/users/${names[1 + (Math.floor(i / 2) % (names.length - 1))]}/follow`,
        init: { method: i % 2 === 0 ? 'DELETE' : 'PUT', headers: { authorization: `Bearer ${users[hot]?.token}` } },
      }),
      { ratePerSecond: 25, ms: 30_000 },
    );
    await waitUntil(async () => (await placement())[shard] === grown.cluster, 30_000, 'the hot shard moved');
    const report = await load;
    await cli('reshard', 'auto', '--off');
    expect(report.failures).toEqual([]);
    const log = readFileSync(path.join(latest().runDir, 'logs', 'supervisor.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"shardBalancer":{') && l.includes('"moved":'))
      .map((l) => JSON.parse(l).shardBalancer);
    expect(log.at(-1)).toMatchObject({
      action: 'move',
      shard,
      from,
      to: grown.cluster,
      load: expect.any(Object),
      after: expect.any(Object),
      reason: expect.stringMatching(/hot: .*× the others' mean/),
    });
    expect(log.at(-1).rate).toBeGreaterThan(4 * log.at(-1).othersMean);
    const shown = await cli('reshard', 'auto');
    expect(shown.stdout).toMatch(
      new RegExp(`move shard ${shard} .* on ${from} → ${grown.cluster}.*moved, fenced \\d+ ms`),
    );
  }, 180_000);

  it('add-cluster refuses, changing nothing, when an address of the new cluster is taken', async () => {
    const before = latest();
    const index = shardClustersOf(before.topology).length;
    const proxy = shardCluster(
      planOf(before.topology),
      { dataCenter: firstDataCenter(before.topology) },
      index,
      1,
    ).find((p) => p.kind === 'dbProxy');
    if (proxy?.kind !== 'dbProxy') throw new Error('no proxy in the next cluster');
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(proxy.stats.port, proxy.stats.host, r));
    try {
      const out = await cli('reshard', 'add-cluster').then(
        () => ({ code: 0, stderr: '' }),
        (err: { code: number; stderr: string }) => err,
      );
      expect(out.code).not.toBe(0);
      expect(out.stderr).toMatch(new RegExp(`in use: ${proxy.stats.host}:${proxy.stats.port}`));
    } finally {
      await new Promise((r) => squatter.close(r));
    }
    const after = latest();
    expect(after.topology).toEqual(before.topology);
    expect(after.processes.map((p) => p.name).sort()).toEqual(before.processes.map((p) => p.name).sort());
  }, 60_000);
});
