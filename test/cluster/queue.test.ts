import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentMaster, redisCall } from '../../src/cluster/components/redis/server.ts';
import { projectRoot } from '../../src/cluster/components/web/process.ts';
import { isAlive, killHard, sleep, waitUntil } from '../../src/cluster/process.ts';
import { type ClusterState, stateOf } from '../../src/cluster/run/index.ts';
import { openSiteQueue } from '../../src/cluster/run/jobs.ts';
import { callSupervisor } from '../../src/cluster/supervisor/client.ts';
import { allProcesses, type ProcessSpec } from '../../src/cluster/topology/index.ts';
import { firstDataCenter, workers } from '../../src/cluster/topology/select.ts';
import type { JobQueue } from '../../src/ports/queue.ts';
import { Client, pngImage } from '../support/app.ts';
import { clusterWebEnv, startTopology } from '../support/cluster.ts';

/**
 * Step 1.8 on real servers: `queue` (cdn + BullMQ on the durable Redis and
 * worker processes; web servers only enqueue). Every fault is a SIGKILL or a
 * job deleted from Redis by hand, and every acknowledged upload must still
 * become ready. One topology for the file; each test sets the worker count
 * it needs (`scaleout scale worker=N`, which pauses the worker autoscaler).
 */
type Topo = Awaited<ReturnType<typeof startTopology>>;
let topo: Topo;
let jobs: JobQueue;
let c: Client;
const latest = (): ClusterState => stateOf(topo.runRoot, topo.state.topology.name) as ClusterState;
const ofKind = <K extends ProcessSpec['kind']>(kind: K) =>
  allProcesses(latest().topology).filter((p): p is Extract<ProcessSpec, { kind: K }> => p.kind === kind);
const pidOf = (name: string) => latest().processes.find((p) => p.name === name)?.pid as number;
const workerPids = () => workers(latest().topology).map((w) => pidOf(w.name));
const logOf = (name: string) => {
  try {
    return readFileSync(path.join(topo.state.runDir, 'logs', `${name}.log`), 'utf8');
  } catch {
    return '';
  }
};
/** Whether a process has sharp (its native module or libvips) mapped. */
const hasLibvips = (pid: number) => /libvips|sharp/.test(readFileSync(`/proc/${pid}/maps`, 'utf8'));

const cli = async (...args: string[]) => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [path.join(projectRoot, 'bin', 'scaleout.js'), ...args, '--name', topo.state.topology.name],
    { env: { ...process.env, SCALEOUT_RUN_ROOT: topo.runRoot }, timeout: 180_000 },
  );
  return stdout;
};
const scaleWorkers = (n: number) => cli('scale', `worker=${n}`);

/** Uploads an image; resolves with the photo id once the site has acknowledged it (202). */
async function upload(client: Client, image: Buffer, caption = 'queued') {
  const res = await client.upload(image, caption, 'p.png');
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.photo.id as string;
}
const statusOf = async (client: Client, id: string) =>
  (await client.request('GET', `/api/v1/photos/${id}`)).body?.photo?.status as string | undefined;
async function waitReady(client: Client, ids: string[], ms: number) {
  await waitUntil(async () => {
    const all = await Promise.all(ids.map((id) => statusOf(client, id)));
    return all.every((s) => s === 'ready');
  }, ms);
}

/** A 49-megapixel interlaced PNG: about 1 s of libvips work alone, longer on this busy machine. */
async function largePng(): Promise<Buffer> {
  const [w, h] = [7000, 7000];
  const raw = Buffer.alloc(w * h * 3);
  let x = 1;
  for (let i = 0; i < raw.length; i += 97) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    raw[i] = x >> 23;
  }
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } })
    .png({ progressive: true })
    .toBuffer();
}

/** A PNG whose header is whole (the web server accepts it) and whose pixels are not: it fails every decode. */
async function poisonPng(): Promise<Buffer> {
  const good = await pngImage(400, 300);
  const idat = good.indexOf('IDAT');
  const bad = Buffer.from(good);
  bad.fill(0x5a, idat + 8, Math.min(bad.length - 16, idat + 200));
  return bad;
}

beforeAll(async () => {
  topo = await startTopology(
    'queue',
    { workerAutoscale: { enabled: false } },
    // A short sweep, so that lost jobs come back within seconds here (production: 60 s, every 15 s).
    { ...clusterWebEnv, SCALEOUT_SWEEP_AFTER_SECONDS: '8', SCALEOUT_SWEEP_EVERY_SECONDS: '2' },
  );
  jobs = openSiteQueue(topo.state, firstDataCenter(topo.state.topology)) as JobQueue;
  c = new Client(topo.url);
  await c.logIn(await c.signUp());
}, 300_000);

afterAll(async () => {
  await jobs?.close();
  const left = await topo?.stop();
  expect(left).toEqual([]);
}, 180_000);

describe('the queue preset (step 1.8)', () => {
  it('lists its workers in status --json, and web servers never load libvips while workers make the variants', async () => {
    await scaleWorkers(2);
    const listed = JSON.parse(await cli('status', '--json').catch((e) => e.stdout)) as {
      processes: { name: string; kind: string; health: string; chapterTier: string }[];
    };
    const ws = listed.processes.filter((p) => p.kind.includes('worker'));
    expect(ws.map((w) => w.name).sort()).toEqual(['worker-1', 'worker-2']);
    expect(ws.every((w) => w.health === 'healthy' && w.chapterTier === 'worker')).toBe(true);

    const id = await upload(c, await pngImage(640, 480), 'through the balancer');
    await waitReady(c, [id], 30_000);
    // A worker ran it (its log says so); no web server ran a job or mapped libvips.
    const ran = workers(latest().topology).filter((w) => logOf(w.name).includes(`"photoId":"${id}"`));
    expect(ran.length).toBeGreaterThanOrEqual(1);
    for (const web of ofKind('web')) {
      expect(logOf(web.name)).not.toContain('photo.variants started');
      expect(hasLibvips(pidOf(web.name))).toBe(false);
    }
    expect(ran.some((w) => hasLibvips(pidOf(w.name)))).toBe(true);
  });

  it('accepts uploads with no worker at all (202, processing), and processes them once one is back', async () => {
    expect(await scaleWorkers(0)).toContain('0 workers');
    expect(workerPids()).toEqual([]);
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await upload(c, await pngImage(320 + i, 240)));
    await sleep(3000);
    for (const id of ids) expect(await statusOf(c, id)).toBe('processing');
    expect((await jobs.depth()).waiting).toBeGreaterThanOrEqual(4);
    await scaleWorkers(1);
    await waitReady(c, ids, 60_000);
  });

  it('all workers killed with SIGKILL: uploads still get 202, and every one is processed when the supervisor brings the workers back', async () => {
    await scaleWorkers(2);
    for (const pid of workerPids()) killHard(pid);
    await waitUntil(() => workerPids().every((pid) => !isAlive(pid)), 5000);
    const users = [c, new Client(topo.url), new Client(topo.url)];
    for (const u of users.slice(1)) await u.logIn(await u.signUp());
    const uploaded: { client: Client; id: string }[] = [];
    for (let i = 0; i < 9; i++) {
      const client = users[i % users.length] as Client;
      uploaded.push({ client, id: await upload(client, await pngImage(200 + i, 150)) });
    }
    // The supervisor restarts them after its back-off (10 s): none of the nine is lost meanwhile.
    for (const u of users) {
      await waitReady(
        u,
        uploaded.filter((x) => x.client === u).map((x) => x.id),
        90_000,
      );
    }
    await waitUntil(() => workerPids().every((pid) => isAlive(pid)), 30_000);
  }, 120_000);

  it('a worker killed with SIGKILL in the middle of a large photo: another worker finishes it within seconds', async () => {
    await scaleWorkers(2);
    const image = await largePng();
    const id = await upload(c, image, 'large');
    // The worker that took it logs its start: kill that one mid-job.
    let victim: string | undefined;
    await waitUntil(() => {
      victim = workers(latest().topology).find((w) => logOf(w.name).includes(`"photoId":"${id}"`))?.name;
      return victim !== undefined;
    }, 30_000);
    expect(await statusOf(c, id)).toBe('processing');
    const killedAt = Date.now();
    killHard(pidOf(victim as string));
    await waitReady(c, [id], 60_000);
    const ms = Date.now() - killedAt;
    const other = workers(latest().topology).find((w) => w.name !== victim) as { name: string };
    // When the other worker took the job again (its log's time): the lock's expiry and the stall check.
    const retried = logOf(other.name)
      .split('\n')
      .filter((l) => l.includes(`"photoId":"${id}"`) && l.includes('photo.variants started'))
      .map((l) => Date.parse((JSON.parse(l) as { time: string }).time))
      .find((t) => t >= killedAt);
    console.log(
      `worker ${victim} killed mid-job: ${other.name} took the job again ${retried ? retried - killedAt : '?'} ms later; the photo was ready ${ms} ms after the kill`,
    );
    expect(logOf(other.name)).toMatch(new RegExp(`"photoId":"${id}".*photo.variants done`));
    // Lock 5 s + a stall check every 2 s + the job itself; far below BullMQ's default 30 s lock.
    expect(ms).toBeLessThan(25_000);
  }, 120_000);

  it('a worker drains on SIGTERM: it finishes the job it runs, takes no new one, and exits', async () => {
    await scaleWorkers(1);
    const image = await largePng();
    const [only] = workers(latest().topology);
    const name = (only as { name: string }).name;
    const id = await upload(c, image, 'drained');
    await waitUntil(() => logOf(name).includes(`"photoId":"${id}"`), 30_000);
    const pid = pidOf(name);
    // scale worker=0 drains it: SIGTERM, then the wait for it to exit.
    await scaleWorkers(0);
    expect(isAlive(pid)).toBe(false);
    // The job it ran was finished, not cut off: its variants were made (its fan-out, the next step, may wait for a worker).
    expect(logOf(name)).toMatch(new RegExp(`"photoId":"${id}".*photo.variants done`));
    expect(logOf(name)).not.toMatch(new RegExp(`"photoId":"${id}".*photo.variants failed`));
    expect(await statusOf(c, id)).not.toBe('failed');
    // Nothing was taken after it: a new upload waits.
    const waiting = await upload(c, await pngImage());
    await sleep(1500);
    expect(await statusOf(c, waiting)).toBe('processing');
    await scaleWorkers(1);
    await waitReady(c, [id, waiting], 60_000);
    // Its variants were not made twice: the worker that came back (same slot, same log) only fanned it out, if that was left.
    const starts = logOf(name)
      .split('\n')
      .filter((l) => l.includes(`"photoId":"${id}"`) && l.includes('photo.variants started'));
    expect(starts).toHaveLength(1);
  }, 120_000);

  it('a job deleted from Redis by hand: the sweeper finds the photo still processing and enqueues it again', async () => {
    await scaleWorkers(0);
    const id = await upload(c, await pngImage(111, 77));
    const master = await currentMaster(ofKind('redisSentinel'), 'durable', topo.state.secrets.sentinel);
    const at = { ...(master as { host: string; port: number }), password: topo.state.secrets.redis };
    // BullMQ keeps a prioritized job in a sorted set and its data in a hash: both gone.
    expect(await redisCall(at, 'ZREM', 'scaleout:photo.variants:prioritized', id)).toBe(1);
    expect(await redisCall(at, 'DEL', `scaleout:photo.variants:${id}`)).toBe(1);
    await scaleWorkers(1);
    await waitReady(c, [id], 60_000);
    expect(workers(latest().topology).some((w) => logOf(w.name).includes('sweeper: photos processing too long'))).toBe(
      true,
    );
  }, 120_000);

  it('the durable Redis master killed with jobs queued: every acknowledged upload becomes ready', async () => {
    await scaleWorkers(0);
    const ids = [];
    for (let i = 0; i < 8; i++) ids.push(await upload(c, await pngImage(150 + i, 100)));
    const sentinels = ofKind('redisSentinel');
    const before = await currentMaster(sentinels, 'durable', topo.state.secrets.sentinel);
    const victim = ofKind('redis').find((r) => r.tier === 'durable' && r.listen.host === before?.host) as {
      name: string;
    };
    killHard(pidOf(victim.name));
    await waitUntil(async () => {
      const now = await currentMaster(sentinels, 'durable', topo.state.secrets.sentinel);
      return now !== null && now.host !== before?.host;
    }, 30_000);
    // An upload during the failover waits for the new master, or is accepted on the row alone.
    ids.push(await upload(c, await pngImage(99, 99)));
    await scaleWorkers(2);
    await waitReady(c, ids, 90_000);
  }, 150_000);

  it('a poison photo goes to the dead letter after its retries while the rest of the queue keeps moving', async () => {
    await scaleWorkers(1);
    const poison = await upload(c, await poisonPng(), 'poison');
    const good = [];
    for (let i = 0; i < 3; i++) good.push(await upload(c, await pngImage(90 + i, 60)));
    await waitReady(c, good, 60_000);
    await waitUntil(async () => (await statusOf(c, poison)) === 'failed', 60_000);
    const dead = (await jobs.failed()).find((j) => j.id === poison);
    expect(dead).toMatchObject({ name: 'photo.variants', attempts: 3 });
    // Visible to the operator on the dashboard, with its retry.
    const board = ofKind('dashboard')[0] as { listen: { host: string; port: number } };
    const res = await fetch(`http://${board.listen.host}:${board.listen.port}/api/jobs/failed`, {
      headers: { authorization: `Bearer ${topo.state.secrets.control}` },
    });
    expect(res.status).toBe(200);
    const listed = (await res.json()) as { jobs: { id: string }[] };
    expect(listed.jobs.map((j) => j.id)).toContain(poison);
    const retried = await fetch(`http://${board.listen.host}:${board.listen.port}/api/jobs/${poison}/retry`, {
      method: 'POST',
      headers: { authorization: `Bearer ${topo.state.secrets.control}`, 'x-dashboard': '1' },
    });
    expect(retried.status).toBe(200);
    // It runs again: the photo is failed already, so the handler leaves it (idempotent), and it completes.
    await waitUntil(async () => !(await jobs.failed()).some((j) => j.id === poison), 30_000);
  }, 120_000);

  it('scales workers by queue depth: up under a burst of uploads, down (drained) after it', async () => {
    await scaleWorkers(1);
    const answer = await callSupervisor<{ error?: string }>(latest(), 'POST', '/autoscale', {
      tier: 'worker',
      enabled: true,
      min: 1,
      max: 3,
      target: 1,
      stabilizationSeconds: 10,
      periodSeconds: 2,
    });
    expect(answer.status).toBe(200);
    const users = await Promise.all(
      [0, 1, 2].map(async () => {
        const u = new Client(topo.url);
        await u.logIn(await u.signUp());
        return u;
      }),
    );
    const image = await pngImage(3000, 3000);
    const ids: { u: Client; id: string }[] = [];
    for (let i = 0; i < 24; i++) {
      const u = users[i % 3] as Client;
      ids.push({ u, id: await upload(u, image) });
    }
    await waitUntil(() => workers(latest().topology).length >= 2, 60_000);
    for (const u of users)
      await waitReady(
        u,
        ids.filter((x) => x.u === u).map((x) => x.id),
        120_000,
      );
    // Idle: down to the minimum after the stabilization window, each leaving worker drained.
    await waitUntil(() => workers(latest().topology).length === 1, 60_000);
    const decisions = (
      await callSupervisor<{ reason: string; desired: number }[]>(latest(), 'GET', '/decisions?tier=worker')
    ).body;
    expect(decisions.some((d) => d.reason === 'scale up')).toBe(true);
    expect(decisions.some((d) => d.reason === 'scale down')).toBe(true);
    await callSupervisor(latest(), 'POST', '/autoscale', { tier: 'worker', enabled: false });
  }, 240_000);
});
