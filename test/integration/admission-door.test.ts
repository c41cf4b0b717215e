import { mkdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  doorDepths,
  loadBalancerConfig,
  type RuntimeApi,
  startHaproxy,
  webBackend,
} from '../../src/cluster/components/load-balancer/haproxy.ts';
import { isAlive, stopProcess, waitUntil } from '../../src/cluster/process.ts';
import type { SpecOf } from '../../src/cluster/topology/schema.ts';
import { freePort } from '../support/addresses.ts';
import { tempDir } from '../support/temp.ts';

// The balancer's admission control on a real HAProxy, in front of two web servers that answer only when told:
// its slots are filled, its queue grows, and each class is turned away at its own depth.

const slots = 5;
const depth = 24;
const d = doorDepths(depth);
/** The smallest queue (two servers) at which HAProxy's avg_queue, which rounds up, reaches `k`. */
const full = (k: number) => 2 * (k - 1) + 1;

/** A web server whose requests wait until `release()`; /readyz answers at once. */
async function heldServer() {
  const waiting: (() => void)[] = [];
  let held = true;
  const server = http.createServer((req, res) => {
    const answer = () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`${req.method} ${req.url}`);
    if (req.url === '/readyz' || !held) return answer();
    req.resume();
    waiting.push(answer);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    inFlight: () => waiting.length,
    hold: () => {
      held = true;
    },
    release() {
      held = false;
      for (const w of waiting.splice(0)) w();
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

type Held = Awaited<ReturnType<typeof heldServer>>;

interface Answer {
  status: number;
  retryAfter: string | null;
  code?: string;
  ms: number;
}

interface Balancer {
  base: string;
  api: RuntimeApi;
  servers: Held[];
  pid: number;
}

const balancers: Balancer[] = [];
const removeDirs: (() => Promise<void>)[] = [];
const agent = new http.Agent({ keepAlive: false, maxSockets: 1000 });

function send(b: Balancer, method: string, url: string): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(`${b.base}${url}`, { method, agent }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const body = Buffer.concat(parts).toString();
        let code: string | undefined;
        try {
          code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
        } catch {}
        resolve({
          status: res.statusCode ?? 0,
          retryAfter: (res.headers['retry-after'] as string | undefined) ?? null,
          code,
          ms: performance.now() - started,
        });
      });
    });
    req.on('error', reject);
    req.end(method === 'GET' ? undefined : '{}');
  });
}

/** The balancer's queue for the web backend (its runtime API's qcur). */
const queued = async (b: Balancer) => (await webBackend(b.api)).queued;

/** The project's waitUntil (every 100 ms), with a 5 s default. */
const until = (what: () => boolean | Promise<boolean>, ms = 5000) => waitUntil(what, ms, 'the balancer');

/** HAProxy with the topology's balancer config in front of two held web servers. */
async function startBalancer(queueStandingMs: number): Promise<Balancer> {
  const dir = await tempDir('scaleout-door-');
  removeDirs.push(dir.remove);
  mkdirSync(path.join(dir.dir, 'logs'));
  const servers = [await heldServer(), await heldServer()];
  const [port, statsPort] = [await freePort(), await freePort()];
  const lb = {
    name: 'door-lb',
    kind: 'loadBalancer',
    listen: { host: '127.0.0.1', port },
    stats: { host: '127.0.0.1', port: statsPort },
  } as unknown as SpecOf<'loadBalancer'>;
  const webs = servers.map(
    (s, i) => ({ name: `web-${i + 1}`, kind: 'web', listen: { host: '127.0.0.1', port: s.port } }) as SpecOf<'web'>,
  );
  const config = loadBalancerConfig(lb, webs, webs, {
    runDir: dir.dir,
    maxConnectionsPerClient: 1024,
    maxRequestsPerServer: slots,
    queueTimeoutMs: 2000,
    queueDepthPerServer: depth,
    queueStandingMs,
  });
  const proc = await startHaproxy(lb.name, config, dir.dir, lb.listen);
  const b = { base: `http://127.0.0.1:${port}`, api: { runDir: dir.dir, lb }, servers, pid: proc.pid };
  balancers.push(b);
  // Both servers checked up before the first request.
  await until(
    async () =>
      (await webBackend(b.api)).servers.filter((x) => /^web-\d$/.test(x.name) && x.status === 'UP').length === 2,
    10_000,
  );
  return b;
}

// One balancer whose queue never counts as standing (the usual bounds), one whose queue stands after 300 ms, and
// one with the topologies' 500 ms.
let burst: Balancer;
let standing: Balancer;
let stall: Balancer;

beforeAll(async () => {
  burst = await startBalancer(3_600_000);
  standing = await startBalancer(300);
  stall = await startBalancer(500);
}, 30_000);

afterAll(async () => {
  for (const b of balancers) for (const s of b.servers) s.release();
  for (const b of balancers) {
    await stopProcess(b.pid, 5000);
    expect(isAlive(b.pid)).toBe(false);
  }
  await Promise.all(balancers.flatMap((b) => b.servers.map((s) => s.close())));
  agent.destroy();
  for (const remove of removeDirs) await remove();
});

describe("the balancer's door: each class shed at its queue depth, at once, with Retry-After", () => {
  it('sheds uploads first, then other writes, then reads, and serves what it queued once the servers answer', async () => {
    const b = burst;
    for (const s of b.servers) s.hold();
    const pending: Promise<Answer>[] = [];
    const reads = (n: number) => {
      for (let i = 0; i < n; i++) pending.push(send(b, 'GET', `/api/v1/photos/p${pending.length}`));
    };
    // Every slot held (5 per server), then the queue at the costly bound.
    reads(2 * slots);
    await until(() => b.servers.every((s) => s.inFlight() === slots));
    reads(full(d.costly));
    await until(async () => (await queued(b)) === full(d.costly));

    const upload = await send(b, 'POST', '/api/v1/photos');
    expect(upload).toMatchObject({ status: 503, retryAfter: '1', code: 'OVERLOADED' });
    expect(upload.ms).toBeLessThan(500);
    // A like is not shed yet: it waits in the queue.
    const like = send(b, 'PUT', '/api/v1/photos/x/like');
    await until(async () => (await queued(b)) === full(d.costly) + 1);

    // The queue at the writes' bound: a like is turned away now, a read still waits.
    reads(full(d.write) - full(d.costly) - 1);
    await until(async () => (await queued(b)) === full(d.write));
    const secondLike = await send(b, 'PUT', '/api/v1/photos/y/like');
    expect(secondLike).toMatchObject({ status: 503, retryAfter: '1', code: 'OVERLOADED' });
    const read = send(b, 'GET', '/api/v1/feed');
    await until(async () => (await queued(b)) === full(d.write) + 1);

    // The queue at the reads' bound: a read is turned away too.
    reads(full(d.read) - full(d.write) - 1);
    await until(async () => (await queued(b)) === full(d.read));
    const lateRead = await send(b, 'GET', '/api/v1/feed');
    expect(lateRead).toMatchObject({ status: 503, retryAfter: '1', code: 'OVERLOADED' });
    expect(lateRead.ms).toBeLessThan(500);

    // The servers answer: everything queued is served, none shed.
    for (const s of b.servers) s.release();
    const answers = await Promise.all([...pending, like, read]);
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(answers).toHaveLength(2 * slots + full(d.read));
  }, 30_000);

  it('a queue that stands gets a third of the bounds; once it drains, the usual ones again', async () => {
    const b = standing;
    const short = doorDepths(Math.round(depth / 3));
    for (const s of b.servers) s.hold();
    const pending: Promise<Answer>[] = [];
    for (let i = 0; i < 2 * slots + full(short.read); i++) pending.push(send(b, 'GET', `/api/v1/photos/q${i}`));
    await until(async () => (await queued(b)) === full(short.read));
    // No arrival has found the queue shallow for longer than the balancer's 300 ms: it stands.
    await new Promise((r) => setTimeout(r, 450));
    const read = await send(b, 'GET', '/api/v1/feed');
    expect(read).toMatchObject({ status: 503, retryAfter: '1', code: 'OVERLOADED' });
    expect(read.ms).toBeLessThan(250);
    const upload = await send(b, 'POST', '/api/v1/photos');
    expect(upload).toMatchObject({ status: 503, code: 'OVERLOADED' });
    // The same read where the queue has not stood (the usual bounds) waits its turn.
    for (const s of burst.servers) s.hold();
    const waits: Promise<Answer>[] = [];
    for (let i = 0; i < 2 * slots + full(short.read); i++) waits.push(send(burst, 'GET', `/api/v1/photos/w${i}`));
    await until(async () => (await queued(burst)) === full(short.read));
    await new Promise((r) => setTimeout(r, 450));
    const waited = send(burst, 'GET', '/api/v1/feed');
    await until(async () => (await queued(burst)) === full(short.read) + 1);

    for (const s of [...b.servers, ...burst.servers]) s.release();
    const answers = await Promise.all([...pending, ...waits, waited]);
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    // Drained: an arrival finds the queue shallow, and the usual bounds are back.
    for (const s of b.servers) s.hold();
    const again: Promise<Answer>[] = [];
    for (let i = 0; i < 2 * slots + full(short.read); i++) again.push(send(b, 'GET', `/api/v1/photos/r${i}`));
    await until(async () => (await queued(b)) === full(short.read));
    const served = send(b, 'GET', '/api/v1/feed');
    await until(async () => (await queued(b)) === full(short.read) + 1);
    for (const s of b.servers) s.release();
    expect((await Promise.all([...again, served])).filter((a) => a.status !== 200)).toEqual([]);
  }, 30_000);

  it('a stall shorter than the standing time is waited out, arrivals and all, not shed', async () => {
    const b = stall;
    for (const s of b.servers) s.hold();
    const pending: Promise<Answer>[] = [];
    // Reads arriving all through a 400 ms stall (75 a second): the queue grows past a third of their bound.
    for (let i = 0; i < 2 * slots + 30; i++) {
      pending.push(send(b, 'GET', `/api/v1/photos/s${i}`));
      if (i >= 2 * slots) await new Promise((r) => setTimeout(r, 13));
    }
    expect(await queued(b)).toBeGreaterThan(full(Math.round(depth / 3)));
    for (const s of b.servers) s.release();
    const answers = await Promise.all(pending);
    expect(answers.map((a) => a.status).filter((s) => s !== 200)).toEqual([]);
  }, 30_000);
});
