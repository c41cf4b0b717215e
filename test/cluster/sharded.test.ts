import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withPrimary } from '../../src/cluster/components/db-proxy/query.ts';
import { readShardMap } from '../../src/cluster/components/db-proxy/shard-map.ts';
import { isLeader, patroniCluster, waitForCluster } from '../../src/cluster/components/patroni/cluster.ts';
import { killHard, waitUntil } from '../../src/cluster/process.ts';
import { moveShard } from '../../src/cluster/reshard/move.ts';
import { type ClusterState, postmasterPid, restart } from '../../src/cluster/run/index.ts';
import { shardStatus, status } from '../../src/cluster/run/status.ts';
import { allProcesses, type ProcessSpec, processesOf } from '../../src/cluster/topology/index.ts';
import { isFenced } from '../../src/platform/db/fence.ts';
import { shardOfId, shardOfUsername, shardSchema } from '../../src/ports/shards.ts';
import { Client, jpegWithExif, uniqueName } from '../support/app.ts';
import { startTopology, steadyLoad } from '../support/cluster.ts';

type Topo = Awaited<ReturnType<typeof startTopology>>;
type PatroniSpec = Extract<ProcessSpec, { kind: 'patroni' }>;

const root = path.resolve(import.meta.dirname, '..', '..');

/** A superuser connection to a shard cluster's primary, through its proxy. */
const onCluster = <T>(state: ClusterState, cluster: string, fn: (c: pg.Client) => Promise<T>): Promise<T> =>
  withPrimary(state, cluster, fn);

const schemasOn = (state: ClusterState, cluster: string) =>
  onCluster(state, cluster, async (c) =>
    (await c.query(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'shard\\_%' ORDER BY 1`)).rows.map(
      (r) => r.nspname as string,
    ),
  );

/** How many users `username` follows, counted in `schema` on `cluster`. */
const followsOf = (state: ClusterState, cluster: string, schema: string, username: string) =>
  onCluster(
    state,
    cluster,
    async (c) =>
      (
        await c.query(
          `SELECT count(*)::int AS n FROM ${schema}.follows f JOIN ${schema}.users w ON w.id = f.follower_id
            WHERE w.username = $1`,
          [username],
        )
      ).rows[0]?.n as number | undefined,
  );

const nodesOf = (state: ClusterState, cluster: string) =>
  allProcesses(state.topology).filter((p): p is PatroniSpec => p.kind === 'patroni' && p.cluster === cluster);

/** A fresh username whose logical shard the map places on `cluster` (and, if given, on that shard). */
function nameOn(map: string[], cluster: string, shard?: number): string {
  for (;;) {
    const name = uniqueName('s');
    const k = shardOfUsername(name);
    if (map[k] === cluster && (shard === undefined || k === shard)) return name;
  }
}

describe('sharded: 64 logical shards over two Patroni clusters (pg-a, pg-b), the map in etcd (step 1.10)', () => {
  let topo: Topo;
  let map: string[];
  const signUp = async (name: string) => {
    const c = new Client(topo.url);
    await c.signUp(name);
    await c.logIn(name);
    return c;
  };

  beforeAll(async () => {
    // Faults here are restarted by hand (restart()), with no supervisor racing them.
    topo = await startTopology('sharded', { supervise: false });
    map = (await readShardMap(processesOf(topo.state.topology, 'etcd')[0] as never, topo.state.secrets.etcd))?.map
      .clusters as string[];
  }, 300_000);
  afterAll(async () => {
    if (topo) expect(await topo.stop()).toEqual([]);
  }, 90_000);

  it('is up: each cluster a leader and a streaming replica named after it, and status --json shows the map', async () => {
    const out = execFileSync(
      process.execPath,
      [path.join(root, 'bin/scaleout.js'), 'status', '--json', '--name', topo.state.topology.name],
      { env: { ...process.env, SCALEOUT_RUN_ROOT: topo.runRoot }, encoding: 'utf8' },
    );
    const s = JSON.parse(out) as {
      shards: { mapVersion: number; clusters: { name: string; logicalShards: number[]; primary: string }[] };
      processes: { name: string; kind: string; role: string; cluster?: string; health: string }[];
    };
    expect(s.shards.mapVersion).toBeGreaterThanOrEqual(1);
    expect(s.shards.clusters.map((c) => [c.name, c.logicalShards.length])).toEqual([
      ['pg-a', 32],
      ['pg-b', 32],
    ]);
    for (const cluster of ['pg-a', 'pg-b']) {
      const nodes = s.processes.filter((p) => p.kind === 'patroni' && p.cluster === cluster);
      expect(nodes.map((n) => n.name).sort()).toEqual([`${cluster}-1`, `${cluster}-2`]);
      expect(nodes.filter((n) => n.role === 'leader')).toHaveLength(1);
      expect(s.shards.clusters.find((c) => c.name === cluster)?.primary).toMatch(new RegExp(`^${cluster}-`));
    }
    expect(s.processes.every((p) => p.health === 'healthy')).toBe(true);
    // Each cluster holds the schemas of its logical shards, and only those.
    expect(await schemasOn(topo.state, 'pg-a')).toEqual(map.flatMap((c, k) => (c === 'pg-a' ? [shardSchema(k)] : [])));
  });

  it('sign-up, upload, follow and feed through the balancer, with the users on both clusters', async () => {
    const aName = nameOn(map, 'pg-a');
    const a = await signUp(aName);
    const b = await signUp(nameOn(map, 'pg-b'));
    const id = (await a.upload(await jpegWithExif(), 'from pg-a')).body.photo.id as string;
    // The photo's id carries its owner's logical shard.
    expect(shardOfId(id)).toBe(shardOfUsername(aName));
    expect((await a.waitForPhoto(id, 20_000)).body.photo.status).toBe('ready');
    expect((await b.request('PUT', `/api/v1/users/${aName}/follow`, { bearer: true })).status).toBe(204);
    await waitUntil(
      async () =>
        ((await b.request('GET', '/api/v1/feed', { bearer: true })).body.items ?? []).some(
          (p: { id: string }) => p.id === id,
        ),
      15_000,
      "the follower's feed shows the photo",
    );
    // The photo's row is on its owner's shard, on pg-a; the follow on the follower's, on pg-b.
    const shard = shardSchema(shardOfUsername(aName));
    expect(
      await onCluster(topo.state, 'pg-a', async (c) => (await c.query(`SELECT id FROM ${shard}.photos`)).rows),
    ).toEqual(expect.arrayContaining([{ id }]));
    const profile = await b.request('GET', `/api/v1/users/${aName}`, { bearer: true });
    expect(profile.body.user.followerCount).toBe(1);
    expect(profile.body.following).toBe(true);
  }, 60_000);

  it('reshard move of a shard holding users, under writes to it: 0 acknowledged writes lost, the rows moved', async () => {
    const shard = map.indexOf('pg-a');
    const mover = nameOn(map, 'pg-a', shard);
    const writer = await signUp(mover);
    const names: string[] = [];
    for (let i = 0; i < 40; i++) {
      const n = uniqueName('f');
      await new Client(topo.url).signUp(n);
      names.push(n);
    }
    const acked: string[] = [];
    const load = steadyLoad(
      (i) => ({
        url: `${topo.url}/api/v1/users/${names[i % names.length]}/follow`,
        init: { method: 'PUT', headers: { authorization: `Bearer ${writer.token}` } },
      }),
      { ratePerSecond: 8, ms: 5000, onOk: (i) => acked.push(names[i % names.length] as string) },
    );
    await new Promise((r) => setTimeout(r, 1500));
    const report = await moveShard(topo.state, { shard, to: 'pg-b' });
    const result = await load;
    console.log(
      `moved ${shardSchema(shard)} pg-a → pg-b: ${report.bytes} bytes, copy ${report.copyMs} ms, catch-up ${report.catchUpMs} ms, writes fenced ${report.fencedMs} ms; ${result.ok}/${result.sent} writes ok`,
    );
    expect(result.failures).toEqual([]);
    expect(report.rows.users).toBeGreaterThanOrEqual(1);
    const schema = shardSchema(shard);
    expect(await schemasOn(topo.state, 'pg-a')).not.toContain(schema);
    // Every acknowledged follow is on the target, with its follower's row.
    const follows = await followsOf(topo.state, 'pg-b', schema, mover);
    expect(acked.length).toBeGreaterThan(20);
    expect(follows).toBe(new Set(acked).size);
    expect(await onCluster(topo.state, 'pg-b', (c) => isFenced(c, schema))).toBe(false);
    // The map moved, and the site writes to the shard on its new cluster.
    map = (await readShardMap(processesOf(topo.state.topology, 'etcd')[0] as never, topo.state.secrets.etcd))?.map
      .clusters as string[];
    expect(map[shard]).toBe('pg-b');
    expect((await writer.request('DELETE', `/api/v1/users/${names[0]}/follow`, { bearer: true })).status).toBe(204);
  }, 180_000);

  it('kill -9 of one cluster’s primary under writes: users on the other see 0 failed writes, and no acknowledged write is lost', async () => {
    const onB = await signUp(nameOn(map, 'pg-b'));
    const onA = await signUp(nameOn(map, 'pg-a'));
    const targets: string[] = [];
    for (let i = 0; i < 30; i++) {
      const n = uniqueName('k');
      await new Client(topo.url).signUp(n);
      targets.push(n);
    }
    const follow = (c: Client) => (i: number) => ({
      url: `${topo.url}/api/v1/users/${targets[i % targets.length]}/follow`,
      init: { method: i % 2 === 0 ? 'PUT' : 'DELETE', headers: { authorization: `Bearer ${c.token}` } },
    });
    const ackedA: number[] = [];
    const [loadB, loadA] = [
      steadyLoad(follow(onB), { ratePerSecond: 5, ms: 20_000 }),
      steadyLoad(follow(onA), { ratePerSecond: 5, ms: 20_000, onOk: (i) => ackedA.push(i) }),
    ];
    await new Promise((r) => setTimeout(r, 3000));
    const members = (await patroniCluster(nodesOf(topo.state, 'pg-a'))) ?? [];
    const leader = members.find(isLeader)?.name as string;
    const postmaster = postmasterPid(topo.state.runDir, leader);
    killHard(topo.state.processes.find((p) => p.name === leader)?.pid as number);
    if (postmaster) killHard(postmaster);
    const [b, a] = await Promise.all([loadB, loadA]);
    console.log(
      `pg-a's primary ${leader} killed: pg-b's user ${b.ok}/${b.sent} ok; pg-a's user ${a.ok}/${a.sent} ok, ${a.failures.length} failed`,
    );
    expect(b.failures).toEqual([]);
    expect(a.ok).toBeGreaterThan(0);
    // pg-a failed over: a new leader, and the site writes to its shards again.
    await waitUntil(
      async () =>
        ((await patroniCluster(nodesOf(topo.state, 'pg-a'))) ?? []).some((m) => isLeader(m) && m.name !== leader),
      30_000,
      'a new leader of pg-a',
    );
    // 30 targets, an even count: each target gets only follows (even i) or only unfollows (odd i). Every
    // acknowledged follow must be there after the failover.
    const followed = [...new Set(ackedA.filter((i) => i % 2 === 0).map((i) => i % targets.length))];
    expect(followed.length).toBeGreaterThan(0);
    for (const t of followed) {
      const res = await onA.request('GET', `/api/v1/users/${targets[t]}`, { bearer: true });
      expect(res.body.following).toBe(true);
    }
    await restart(topo.state, leader);
    await waitForCluster(nodesOf(topo.state, 'pg-a'), topo.state.topology.options.synchronous, 90_000);
    expect((await status(topo.state)).filter((r) => r.health !== 'healthy').map((r) => r.name)).toEqual([]);
    expect(
      (await shardStatus(topo.state, await status(topo.state)))?.clusters.find((c) => c.name === 'pg-a')?.primary,
    ).not.toBeNull();
  }, 180_000);

  it('the target primary killed during a move: the move rolls back, the shard stays writable on its source, and moves once run again', async () => {
    const shard = map.findIndex((c, k) => c === 'pg-a' && k > 1);
    const schema = shardSchema(shard);
    const writerName = nameOn(map, 'pg-a', shard);
    const writer = await signUp(writerName);
    const names: string[] = [];
    for (let i = 0; i < 40; i++) {
      const n = uniqueName('t');
      await new Client(topo.url).signUp(n);
      names.push(n);
    }
    const acked: string[] = [];
    const load = steadyLoad(
      (i) => ({
        url: `${topo.url}/api/v1/users/${names[i % names.length]}/follow`,
        init: { method: 'PUT', headers: { authorization: `Bearer ${writer.token}` } },
      }),
      { ratePerSecond: 4, ms: 10_000, timeoutMs: 30_000, onOk: (i) => acked.push(names[i % names.length] as string) },
    );
    await new Promise((r) => setTimeout(r, 1000));
    const target = ((await patroniCluster(nodesOf(topo.state, 'pg-b'))) ?? []).find(isLeader)?.name as string;
    const move = moveShard(topo.state, { shard, to: 'pg-b', copyTimeoutMs: 60_000 }).then(
      (r) => ({ ok: true as const, r }),
      (err: Error) => ({ ok: false as const, err }),
    );
    await waitUntil(
      () =>
        onCluster(
          topo.state,
          'pg-b',
          async (c) =>
            (await c.query('SELECT 1 FROM pg_subscription WHERE subname = $1', [`move_${schema}`])).rows.length > 0,
        ).catch(() => false),
      30_000,
      'the move subscribes',
    );
    const postmaster = postmasterPid(topo.state.runDir, target);
    killHard(topo.state.processes.find((p) => p.name === target)?.pid as number);
    if (postmaster) killHard(postmaster);
    const first = await move;
    console.log(
      `the move with its target ${target} killed: ${first.ok ? `finished (${first.r.attempts} attempts)` : `rolled back (${first.err.message})`}`,
    );
    const result = await load;
    // Whatever the move did, the writes to the moving shard went on: its source took them.
    expect(result.failures).toEqual([]);
    await waitUntil(
      async () =>
        ((await patroniCluster(nodesOf(topo.state, 'pg-b'))) ?? []).some((m) => isLeader(m) && m.name !== target),
      30_000,
      'a new leader of pg-b',
    );
    map = (await readShardMap(processesOf(topo.state.topology, 'etcd')[0] as never, topo.state.secrets.etcd))?.map
      .clusters as string[];
    if (!first.ok) {
      // Rolled back: one home, the source, unfenced; and the move succeeds when run again.
      expect(map[shard]).toBe('pg-a');
      expect(await onCluster(topo.state, 'pg-a', (c) => isFenced(c, schema))).toBe(false);
      const again = await moveShard(topo.state, { shard, to: 'pg-b' });
      expect(again.to).toBe('pg-b');
      map[shard] = 'pg-b';
    }
    expect(await onCluster(topo.state, 'pg-b', (c) => isFenced(c, schema))).toBe(false);
    expect(await schemasOn(topo.state, 'pg-a')).not.toContain(schema);
    expect(await followsOf(topo.state, 'pg-b', schema, writerName)).toBeGreaterThanOrEqual(new Set(acked).size);
    await restart(topo.state, target);
    await waitForCluster(nodesOf(topo.state, 'pg-b'), topo.state.topology.options.synchronous, 90_000);
  }, 240_000);

  it('the source primary killed during a move: no split brain, no acknowledged write lost; the move resumes or rolls back', async () => {
    const shard = map.findIndex((c, k) => c === 'pg-a' && k > 0);
    const schema = shardSchema(shard);
    const writerName = nameOn(map, 'pg-a', shard);
    const writer = await signUp(writerName);
    const names: string[] = [];
    for (let i = 0; i < 60; i++) {
      const n = uniqueName('m');
      await new Client(topo.url).signUp(n);
      names.push(n);
    }
    const acked: string[] = [];
    const load = steadyLoad(
      (i) => ({
        url: `${topo.url}/api/v1/users/${names[i % names.length]}/follow`,
        init: { method: 'PUT', headers: { authorization: `Bearer ${writer.token}` } },
      }),
      { ratePerSecond: 4, ms: 15_000, timeoutMs: 30_000, onOk: (i) => acked.push(names[i % names.length] as string) },
    );
    await new Promise((r) => setTimeout(r, 1000));
    const leader = ((await patroniCluster(nodesOf(topo.state, 'pg-a'))) ?? []).find(isLeader)?.name as string;
    const move = moveShard(topo.state, { shard, to: 'pg-b', copyTimeoutMs: 60_000 }).then(
      (r) => ({ ok: true as const, r }),
      (err: Error) => ({ ok: false as const, err }),
    );
    // As soon as the target subscribes (the copy has begun), the source's primary dies.
    await waitUntil(
      () =>
        onCluster(
          topo.state,
          'pg-b',
          async (c) =>
            (await c.query('SELECT 1 FROM pg_subscription WHERE subname = $1', [`move_${schema}`])).rows.length > 0,
        ),
      30_000,
      'the move subscribes',
    );
    const postmaster = postmasterPid(topo.state.runDir, leader);
    killHard(topo.state.processes.find((p) => p.name === leader)?.pid as number);
    if (postmaster) killHard(postmaster);
    const first = await move;
    console.log(
      `the move with ${leader} killed: ${first.ok ? `resumed (${first.r.attempts} attempts)` : `rolled back (${first.err.message})`}`,
    );
    await waitUntil(
      async () =>
        ((await patroniCluster(nodesOf(topo.state, 'pg-a'))) ?? []).some((m) => isLeader(m) && m.name !== leader),
      30_000,
      'a new leader of pg-a',
    );
    if (!first.ok) {
      // Rolled back: the shard is still pg-a's, writable there, and the move succeeds when run again.
      const again = await moveShard(topo.state, { shard, to: 'pg-b' });
      expect(again.to).toBe('pg-b');
    }
    const result = await load;
    expect(acked.length).toBeGreaterThan(0);
    // One home: the map says pg-b, pg-b's copy takes writes, and pg-a has none left.
    map = (await readShardMap(processesOf(topo.state.topology, 'etcd')[0] as never, topo.state.secrets.etcd))?.map
      .clusters as string[];
    expect(map[shard]).toBe('pg-b');
    expect(await onCluster(topo.state, 'pg-b', (c) => isFenced(c, schema))).toBe(false);
    expect(await schemasOn(topo.state, 'pg-a')).not.toContain(schema);
    const follows = await followsOf(topo.state, 'pg-b', schema, writerName);
    console.log(`${result.ok}/${result.sent} follows acknowledged, ${result.failures.length} failed`);
    expect(follows).toBeGreaterThanOrEqual(new Set(acked).size);
    await restart(topo.state, leader);
    await waitForCluster(nodesOf(topo.state, 'pg-a'), topo.state.topology.options.synchronous, 90_000);
  }, 240_000);
});
