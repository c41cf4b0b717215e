import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  isLeader,
  patroniCluster,
  patroniRestAuth,
  waitForCluster,
} from '../../src/cluster/components/patroni/cluster.ts';
import { keep, mergeByTime, parseLines } from '../../src/cluster/logs.ts';
import { httpStatus, isAlive, killHard, waitUntil } from '../../src/cluster/process.ts';
import { type ClusterState, postmasterPid, queryPrimary, restart, stateOf, up } from '../../src/cluster/run/index.ts';
import { status } from '../../src/cluster/run/status.ts';
import { allProcesses, buildPreset, type ProcessSpec } from '../../src/cluster/topology/index.ts';
import { lsnReached } from '../../src/platform/db/consistency.ts';
import { Client, jpegWithExif, password, pngImage, uniqueName } from '../support/app.ts';
import { json, startTopology, steadyLoad } from '../support/cluster.ts';

type Topo = Awaited<ReturnType<typeof startTopology>>;
type PatroniSpec = Extract<ProcessSpec, { kind: 'patroni' }>;

const nodesOf = (state: ClusterState) =>
  allProcesses(state.topology).filter((p): p is PatroniSpec => p.kind === 'patroni');
const pidOf = (state: ClusterState, name: string) => state.processes.find((p) => p.name === name)?.pid as number;

async function signUpAndUpload(url: string) {
  const c = new Client(url);
  const name = await c.signUp();
  await c.logIn(name);
  const id = (await c.upload(await jpegWithExif(), 'through the load balancer')).body.photo.id as string;
  const ready = await c.waitForPhoto(id, 15_000);
  return { c, name, id, photo: ready.body.photo };
}

/** Kill -9 a Patroni node and the PostgreSQL it manages. */
function killNode(state: ClusterState, node: string) {
  const postmaster = postmasterPid(state.runDir, node);
  killHard(pidOf(state, node));
  if (postmaster) killHard(postmaster);
}

async function waitClusterHealthy(state: ClusterState) {
  await waitForCluster(nodesOf(state), state.topology.options.synchronous, 90_000);
}

/** Each test starts from a whole cluster, whatever the one before it broke. */
async function waitAllHealthy(state: ClusterState) {
  await waitClusterHealthy(state);
  await waitUntil(
    async () => (await status(state)).every((r) => r.health === 'healthy'),
    60_000,
    'every process healthy',
  );
}

async function onEachReplica(state: ClusterState, sql: string, database = 'postgres') {
  const members = (await patroniCluster(nodesOf(state))) ?? [];
  const rows: Record<string, unknown>[] = [];
  for (const m of members.filter((x) => !isLeader(x))) {
    const c = new pg.Client({
      host: m.host,
      port: m.port,
      user: 'postgres',
      password: state.secrets.superuser,
      database,
    });
    await c.connect();
    rows.push(...(await c.query(sql)).rows);
    await c.end();
  }
  return rows;
}

/**
 * Delays replay on every replica by `delay` (Patroni's dynamic configuration;
 * Patroni undoes a pg_wal_replay_pause at once), and waits until each has it.
 * `null` takes the delay away.
 */
async function delayReplicas(state: ClusterState, delay: string | null) {
  const [node] = nodesOf(state);
  const res = await fetch(`http://${node?.rest.host}:${node?.rest.port}/config`, {
    method: 'PATCH',
    // A change of Patroni's configuration: it asks for the topology's REST password.
    headers: patroniRestAuth(state.secrets.patroniRest),
    body: JSON.stringify({ postgresql: { parameters: { recovery_min_apply_delay: delay } } }),
  });
  expect(res.status).toBe(200);
  const want = delay === null ? '0' : String(Number.parseInt(delay, 10) * 1000);
  await waitUntil(
    async () =>
      (await onEachReplica(state, "SELECT setting FROM pg_settings WHERE name = 'recovery_min_apply_delay'")).every(
        (r) => r.setting === want,
      ),
    20_000,
    `recovery_min_apply_delay ${want} ms on every replica`,
  );
}

const expectBadInputStill4xx = async (url: string) => {
  const res = await fetch(`${url}/api/v1/users`, json({ username: 'X', password: 'short' }));
  expect(res.status).toBe(400);
};

describe('two topologies at once', () => {
  it('run side by side under different names, and a clash of addresses is refused', async () => {
    const [a, b] = await Promise.all([startTopology('single'), startTopology('single')]);
    try {
      expect(a.url).not.toBe(b.url);
      const [ra, rb] = await Promise.all([new Client(a.url).signUp(), new Client(b.url).signUp()]);
      expect((await new Client(a.url).request('GET', `/api/v1/users/${rb}`)).status).toBe(404);
      expect((await new Client(b.url).request('GET', `/api/v1/users/${ra}`)).status).toBe(404);
      const clash = buildPreset('single', {
        name: 'clash',
        octet: Number(new URL(a.url).hostname.split('.')[1]),
        port: Number(new URL(a.url).port),
      });
      await expect(up(clash, { runRoot: a.runRoot })).rejects.toThrow(/already in use/);
    } finally {
      expect(await a.stop()).toEqual([]);
      expect(await b.stop()).toEqual([]);
    }
  }, 60_000);
});

describe('db preset: the web server and its own PostgreSQL server', () => {
  let topo: Topo;
  beforeAll(async () => {
    topo = await startTopology('db');
  }, 120_000);
  afterAll(async () => {
    if (topo) expect(await topo.stop()).toEqual([]);
  });

  it('runs the photo flow on PostgreSQL', async () => {
    const rows = await status(topo.state);
    expect(rows.map((r) => [r.name, r.health])).toEqual([
      ['postgres', 'healthy'],
      ['web-1', 'healthy'],
      ['postgres-exporter', 'healthy'],
      ['host-exporter', 'healthy'],
      ['prometheus', 'healthy'],
      ['dashboard', 'healthy'],
      ['supervisor', 'healthy'],
    ]);
    const { c, name, id, photo } = await signUpAndUpload(topo.url);
    expect(photo.status).toBe('ready');
    expect((await fetch(photo.variants.display)).headers.get('content-type')).toBe('image/webp');
    expect((await c.request('GET', '/api/v1/feed')).body.items[0].id).toBe(id);
    expect((await c.request('GET', `/api/v1/users/${name}`)).body.user.photoCount).toBe(1);
  });
});

describe('lb preset: HAProxy, 2 web servers, 3 PostgreSQL nodes under Patroni (synchronous)', () => {
  let topo: Topo;
  let seed: Awaited<ReturnType<typeof signUpAndUpload>>;
  beforeAll(async () => {
    // Faults here are restarted by hand (restart()): no supervisor racing them; test/cluster/stateless.test.ts has it.
    topo = await startTopology('lb', { supervise: false });
    seed = await signUpAndUpload(topo.url);
  }, 180_000);
  afterAll(async () => {
    if (topo) expect(await topo.stop()).toEqual([]);
  }, 60_000);
  beforeEach(async () => {
    // Another process (the dashboard) may have restarted something: the state file has the PIDs.
    Object.assign(topo.state, stateOf(topo.runRoot, topo.state.topology.name));
    await waitAllHealthy(topo.state);
  }, 120_000);

  const reads = (i: number) => {
    const paths = [`/api/v1/photos/${seed.id}`, `/api/v1/users/${seed.name}`, `/api/v1/users/${seed.name}/photos`, '/'];
    return { url: topo.url + paths[i % paths.length], init: { headers: { authorization: `Bearer ${seed.c.token}` } } };
  };

  it('is up: one public load balancer, two web servers, a leader and two streaming replicas', async () => {
    const rows = await status(topo.state);
    expect(rows.every((r) => r.health === 'healthy')).toBe(true);
    const count = (kind: string) => rows.filter((r) => r.kind === kind).length;
    expect([count('loadBalancer'), count('web'), count('etcd'), count('patroni')]).toEqual([1, 2, 1, 3]);
    // Each web server reports the commit it runs.
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    expect(rows.filter((r) => r.kind === 'web').map((r) => r.version)).toEqual([head, head]);
    const pg = rows.filter((r) => r.kind === 'patroni');
    expect(pg.filter((r) => r.role === 'leader')).toHaveLength(1);
    expect(pg.filter((r) => r.role !== 'leader').map((r) => r.detail)).toEqual(['streaming', 'streaming']);
    expect(seed.photo.variants.thumb.startsWith(topo.url)).toBe(true);
    expect((await fetch(seed.photo.variants.thumb)).status).toBe(200);
    // The web servers are private: each has its own 127.x address, the public one is the load balancer's.
    const web = allProcesses(topo.state.topology).find((p) => p.kind === 'web');
    expect(web?.kind === 'web' && web.listen.host).not.toBe(new URL(topo.url).hostname);
  });

  it('a like through web-1, read at once through web-2, 200 times: 0 stale; the same through the balancer', async () => {
    const webs = allProcesses(topo.state.topology).filter((p) => p.kind === 'web');
    const [web1, web2] = webs.map((w) => (w.kind === 'web' ? `http://${w.listen.host}:${w.listen.port}` : ''));
    const fan = new Client(topo.url);
    await fan.logIn(await fan.signUp());
    const through = (base: string) => {
      const c = new Client(base);
      c.cookies = new Map(fan.cookies);
      return c;
    };
    const rounds = async (writer: Client, reader: Client) => {
      const base = (await reader.request('GET', `/api/v1/photos/${seed.id}`)).body.photo.likeCount as number;
      let stale = 0;
      for (let i = 0; i < 200; i++) {
        const liked = i % 2 === 0;
        expect((await writer.request(liked ? 'PUT' : 'DELETE', `/api/v1/photos/${seed.id}/like`)).status).toBe(204);
        const photo = (await reader.request('GET', `/api/v1/photos/${seed.id}`)).body.photo;
        if (photo.likedByMe !== liked || photo.likeCount !== base + (liked ? 1 : 0)) stale++;
      }
      return stale;
    };
    expect(await rounds(through(web1 as string), through(web2 as string))).toBe(0);
    expect(await rounds(through(topo.url), through(topo.url))).toBe(0);
  }, 120_000);

  it('one request id names the request in the load balancer and web server logs', async () => {
    const res = await fetch(`${topo.url}/api/v1/users/${seed.name}`);
    const id = res.headers.get('x-request-id') as string;
    expect(id).toMatch(/^[0-9A-F]{8}-/);
    const lines = async () => {
      const all = [];
      for (const p of topo.state.processes)
        all.push(...parseLines(p.name, await readFile(p.log, 'utf8').catch(() => '')));
      return mergeByTime(all).filter((l) => keep(l, { requestId: id }));
    };
    await waitUntil(
      async () => new Set((await lines()).map((l) => l.service)).has('load-balancer'),
      10_000,
      'the HAProxy log line',
    );
    const services = new Set((await lines()).map((l) => l.service));
    expect(services.has('load-balancer')).toBe(true);
    expect([...services].some((s) => s.startsWith('web-'))).toBe(true);
  });

  it('Prometheus scrapes every process, and the dashboard shows charts and a failover in Chromium', async () => {
    const prom = allProcesses(topo.state.topology).find((p) => p.kind === 'prometheus');
    const dash = allProcesses(topo.state.topology).find((p) => p.kind === 'dashboard');
    if (prom?.kind !== 'prometheus' || dash?.kind !== 'dashboard') throw new Error('no prometheus or dashboard');
    const scraped = allProcesses(topo.state.topology)
      .filter((p) => p.kind !== 'dashboard')
      .map((p) => p.name);
    await waitUntil(
      async () => {
        const res = await fetch(`http://${prom.listen.host}:${prom.listen.port}/api/v1/targets`);
        const body = (await res.json()) as {
          data: { activeTargets: { health: string; labels: { process: string } }[] };
        };
        const up = body.data.activeTargets.filter((t) => t.health === 'up').map((t) => t.labels.process);
        return scraped.every((name) => up.includes(name));
      },
      30_000,
      'every process an up target in Prometheus',
    );

    const traffic = steadyLoad(reads, { ratePerSecond: 20, ms: 20_000 });
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
      // The URL `up` prints: the token in it, which the dashboard moves into a cookie for the page's requests.
      await page.goto(`http://${dash.listen.host}:${dash.listen.port}/?token=${topo.state.secrets.control}`);
      expect(new URL(page.url()).search).toBe('');
      await page.waitForFunction(
        () => {
          const d = (window as unknown as { __dashboard?: { points: Record<string, number> } }).__dashboard;
          return (d?.points.requests ?? 0) >= 3 && (d?.points.latency ?? 0) >= 3;
        },
        null,
        { timeout: 30_000 },
      );
      // The first screen draws the topology: one box per process, each in the tier its component declares.
      const names = allProcesses(topo.state.topology).map((p) => p.name);
      const boxes = await page
        .locator('#picture .box')
        .evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.process));
      expect(boxes.sort()).toEqual([...names].sort());
      expect(await page.locator('.cell[data-tier="balancer"] .box[data-process="load-balancer"]').count()).toBe(1);
      expect(await page.locator('.cell[data-tier="web"] .box[data-kind="web"]').count()).toBe(2);
      expect(await page.locator('.cell[data-tier="database"] .box[data-role="leader"]').count()).toBe(1);
      expect(await page.locator('.box[data-process="load-balancer"]').getAttribute('data-health')).toBe('healthy');
      // Every box is on the first screen, above the fold (measured in one pass: the picture is redrawn every second).
      const bottoms = await page
        .locator('#picture .box')
        .evaluateAll((els) => els.map((e) => e.getBoundingClientRect().bottom));
      expect(bottoms).toHaveLength(names.length);
      expect(Math.max(...bottoms)).toBeLessThan(1100);
      await page.screenshot({ path: path.resolve('artifacts', 'dashboard.png'), fullPage: true });

      // Kill a web server from its box, watch the box turn red, restart it from the same panel.
      const web2 = page.locator('.box[data-process="web-2"]');
      const colour = () => web2.evaluate((e) => getComputedStyle(e).backgroundColor);
      const healthyColour = await colour();
      await web2.click();
      await page.click('#details button.kill');
      await page.waitForSelector('.box[data-process="web-2"][data-health="down"]', { timeout: 10_000 });
      expect(await colour()).toBe('rgb(253, 231, 231)');
      expect(await colour()).not.toBe(healthyColour);
      await page.click('#details button.restart');
      await page.waitForSelector('.box[data-process="web-2"][data-health="healthy"]', { timeout: 60_000 });
      // Each web server's version (the commit it runs) in its details, and in the table view beside its health.
      const head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
      await page.waitForSelector(`#details:has-text("${head}")`, { timeout: 10_000 });
      await page.click('#view-table');
      await page.waitForSelector(`tr[data-process="web-2"]:has-text("version ${head.slice(0, 12)}")`, {
        timeout: 10_000,
      });
      expect(await page.locator('#events').textContent()).toContain('web-2');
    } finally {
      await browser.close();
    }
    const report = await traffic;
    // The load balancer routed around the killed server: the site kept answering.
    expect(report.failures).toEqual([]);
  }, 120_000);

  it('kill -9 of a web server under a steady read load fails no request, and it rejoins', async () => {
    const victim = 'web-1';
    const load = steadyLoad(reads, { ratePerSecond: 40, ms: 6000 });
    await new Promise((r) => setTimeout(r, 2000));
    killHard(pidOf(topo.state, victim));
    const report = await load;
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(report.sent);
    await expectBadInputStill4xx(topo.url);

    await restart(topo.state, victim);
    const spec = allProcesses(topo.state.topology).find((p) => p.name === victim);
    if (spec?.kind !== 'web') throw new Error('no web-1');
    const lb = allProcesses(topo.state.topology).find((p) => p.kind === 'loadBalancer');
    if (lb?.kind !== 'loadBalancer') throw new Error('no lb');
    await waitUntil(
      async () => {
        const csv = await (await fetch(`http://${lb.stats.host}:${lb.stats.port}/;csv`)).text();
        return csv.split('\n').some((l) => l.startsWith(`web,${victim},`) && l.includes(',UP,'));
      },
      20_000,
      'web-1 back in the load balancer',
    );
  }, 60_000);

  it('kill -9 of a replica: reads go on without a single failure', async () => {
    const members = (await patroniCluster(nodesOf(topo.state))) ?? [];
    const replica = members.find((m) => !isLeader(m))?.name as string;
    const load = steadyLoad(reads, { ratePerSecond: 40, ms: 6000 });
    await new Promise((r) => setTimeout(r, 1500));
    killNode(topo.state, replica);
    const report = await load;
    expect(report.failures).toEqual([]);
    await expectBadInputStill4xx(topo.url);
    await restart(topo.state, replica);
    await waitClusterHealthy(topo.state);
  }, 120_000);

  it("reads your own writes even while every replica's replay is 8 s behind", async () => {
    const c = new Client(topo.url);
    const name = await c.signUp();
    await c.logIn(name);
    const other = new Client(topo.url);
    const followee = await other.signUp();
    // Lag is the precondition: replay is delayed 8 s on every replica (Patroni undoes a
    // pg_wal_replay_pause at once), and the scenario is tried again until a replica is behind.
    const diagnostics: unknown[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      await delayReplicas(topo.state, '8s');
      try {
        for (let i = 0; i < 5; i++) {
          const id = (await c.upload(await pngImage(16, 16), `ryw ${attempt}.${i}`)).body.photo.id;
          const mine = await c.request('GET', `/api/v1/users/${name}/photos`);
          expect(mine.body.items.map((p: { id: string }) => p.id)).toContain(id);
        }
        const follow = attempt % 2 === 0 ? 'PUT' : 'DELETE';
        expect((await c.request(follow, `/api/v1/users/${followee}/follow`)).status).toBe(204);
        expect((await c.request('GET', `/api/v1/users/${followee}`)).body.following).toBe(follow === 'PUT');
        // Were the replicas really behind the primary? Then these reads could have missed without read-your-writes.
        const replayed = await onEachReplica(
          topo.state,
          'SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_is_wal_replay_paused() AS paused',
        );
        const primary = await queryPrimary<{ lsn: string }>(topo.state, 'SELECT pg_current_wal_lsn()::text AS lsn');
        diagnostics.push({ primary: primary.rows[0]?.lsn, replicas: replayed });
        const lagging = replayed.filter(
          (r) => lsnReached(primary.rows[0]?.lsn ?? '0/0', String(r.lsn)) && r.lsn !== primary.rows[0]?.lsn,
        );
        if (lagging.length > 0) return;
      } finally {
        await delayReplicas(topo.state, null);
      }
    }
    throw new Error(`no replica was behind in 3 tries: ${JSON.stringify(diagnostics)}`);
  }, 90_000);

  it('signs up, then logs in and reads the new account at once, while the replicas lag 8 s behind', async () => {
    const count = "SELECT count(*)::int AS n FROM users WHERE username LIKE 'lag%'";
    await delayReplicas(topo.state, '8s');
    try {
      for (let i = 0; i < 3; i++) {
        // A client with no session: the sign-up is a write, its next requests read.
        const c = new Client(topo.url);
        const name = uniqueName('lag');
        expect((await c.request('POST', '/api/v1/users', { json: { username: name, password } })).status).toBe(201);
        expect((await c.request('GET', `/api/v1/users/${name}`)).status).toBe(200);
        expect((await new Client(topo.url).logIn(name)).status).toBe(201);
        // The site's form signs up and logs in within one request.
        const form = new Client(topo.url);
        const page = await form.request('GET', '/signup', { headers: { accept: 'text/html' } });
        const token = /name="_csrf" value="([^"]+)"/.exec(String(page.body))?.[1] ?? '';
        const formName = uniqueName('lagf');
        const res = await form.request('POST', '/signup', {
          body: new URLSearchParams({ _csrf: token, username: formName, password }).toString(),
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
        });
        expect(res.status).toBe(303);
        expect((await form.request('GET', `/api/v1/users/${formName}`)).status).toBe(200);
      }
      // The replicas really were behind: reads there would have missed these accounts.
      const onReplicas = await onEachReplica(topo.state, count, 'scaleout');
      const onPrimary = (await queryPrimary<{ n: number }>(topo.state, count)).rows[0]?.n ?? 0;
      expect(onPrimary).toBe(6);
      expect(onReplicas.map((r) => Number(r.n) < onPrimary)).toEqual([true, true]);
    } finally {
      await delayReplicas(topo.state, null);
    }
  }, 90_000);

  it('kill -9 of the primary under a write load: a replica takes over within 20 s and no acknowledged write is lost', async () => {
    const members = (await patroniCluster(nodesOf(topo.state))) ?? [];
    const leader = members.find(isLeader)?.name as string;
    const acked: string[] = [];
    let killedAt = 0;
    const names = Array.from({ length: 400 }, () => uniqueName('w'));
    const load = steadyLoad(
      (i) => ({ url: `${topo.url}/api/v1/users`, init: json({ username: names[i], password }) }),
      {
        ratePerSecond: 10,
        ms: 25_000,
        timeoutMs: 20_000,
        onOk: (i) => acked.push(names[i] as string),
      },
    );
    await new Promise((r) => setTimeout(r, 4000));
    killedAt = Date.now();
    killNode(topo.state, leader);
    const report = await load;
    const start = killedAt - (Date.now() - 25_000);

    // Writes resumed: the first acknowledgement of a request sent after the kill came within 20 s
    // (Patroni's 5 s TTL, the election, the proxy's checks; a fresh-clone CI run on this 2-core machine
    // once took 15.5 s, past the 15 s this said before; the failover time itself is measured by
    // `bench run failover`, not here).
    const after = report.okTimes.filter((t) => t > start + 500).sort((a, b) => a - b);
    expect(after.length).toBeGreaterThan(0);
    expect((after[0] as number) - start).toBeLessThan(20_000);
    const newLeader = ((await patroniCluster(nodesOf(topo.state))) ?? []).find(isLeader)?.name;
    expect(newLeader).toBeDefined();
    expect(newLeader).not.toBe(leader);

    // Every acknowledged write is on the new primary.
    const rows = await queryPrimary<{ username: string }>(
      topo.state,
      'SELECT username FROM users WHERE username = ANY($1)',
      [acked],
    );
    const found = new Set(rows.rows.map((r) => r.username));
    expect(acked.filter((n) => !found.has(n))).toEqual([]);
    expect(acked.length).toBeGreaterThan(100);
    await expectBadInputStill4xx(topo.url);
    expect(await httpStatus(`${topo.url}/readyz`)).toBe(200);

    await restart(topo.state, leader);
    await waitClusterHealthy(topo.state);
    expect(isAlive(pidOf(topo.state, leader))).toBe(true);
  }, 120_000);
});
