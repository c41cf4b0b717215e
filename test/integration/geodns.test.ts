import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHealthAggregator } from '../../src/cluster/components/dns/health.ts';
import { startPowerDns } from '../../src/cluster/components/dns/index.ts';
import { queryDns } from '../../src/cluster/components/dns/query.ts';
import { isAlive, type StartedProcess, stopProcess } from '../../src/cluster/process.ts';

/** A free port on every one of `hosts`. */
async function portFreeOn(hosts: string[]): Promise<number> {
  for (;;) {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, hosts[0], r));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise((r) => probe.close(r));
    const free = await Promise.all(
      hosts.map(
        (host) =>
          new Promise<boolean>((resolve) => {
            const s = net.createServer();
            s.once('error', () => resolve(false));
            s.listen(port, host, () => s.close(() => resolve(true)));
          }),
      ),
    );
    if (free.every(Boolean)) return port;
  }
}

/** A data center's edge, as far as the DNS sees it: `/readyz` answers 200 while it runs. */
function edge(host: string) {
  let server: http.Server | undefined;
  const e = {
    host,
    port: 0,
    /** The health checks it answered. */
    checks: 0,
    start: () =>
      new Promise<void>((resolve) => {
        server = http.createServer((req, res) => {
          if (req.url === '/readyz') e.checks++;
          res.writeHead(req.url === '/readyz' ? 200 : 404, { 'content-type': 'text/plain' }).end('ok');
        });
        server.listen(e.port, host, () => resolve());
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        server?.closeAllConnections();
        server?.close(() => resolve());
      }),
  };
  return e;
}

/**
 * Resolves once `ask` has given `expected` five times in a row: PowerDNS
 * starts checking a record's addresses at its first query, and until the
 * first results are in it answers any of them (all count as down).
 */
async function settled(ask: () => Promise<string[]>, expected: string[], timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let inARow = 0;
  while (inARow < 5) {
    const got = await ask();
    inARow = JSON.stringify(got) === JSON.stringify(expected) ? inARow + 1 : 0;
    if (Date.now() > deadline) throw new Error(`expected ${expected} five times in a row, last ${got}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const octet = 200 + Math.floor(Math.random() * 50);
const site = 'www.scaleout.test';
const subnets = { 'dc-a': '10.1.0.0/16', 'dc-b': '10.2.0.0/16' } as const;

describe('geoDNS: PowerDNS 4.7 with Lua records, the closest healthy data center by client subnet', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'scaleout-dns-'));
  const a = edge(`127.${octet}.0.11`);
  const b = edge(`127.${octet}.16.11`);
  const listen = { host: `127.${octet}.224.53`, port: 0 };
  let pdns: StartedProcess | undefined;
  const resolve = async (subnet: string) =>
    (await queryDns(listen, site, { subnet, timeoutMs: 1000 })).answers.map((x) => x.data);

  beforeAll(async () => {
    const port = await portFreeOn([a.host, b.host]);
    a.port = port;
    b.port = port;
    listen.port = await portFreeOn([listen.host]);
    await a.start();
    await b.start();
    pdns = await startPowerDns(
      { name: 'dns', listen, zone: 'scaleout.test', site: 'www', ttl: 5 },
      [
        { name: 'dc-a', clients: [subnets['dc-a']], edge: { host: a.host, port } },
        { name: 'dc-b', clients: [subnets['dc-b']], edge: { host: b.host, port } },
      ],
      dir,
      path.join(dir, 'pdns.log'),
    );
  }, 30_000);
  afterAll(async () => {
    if (pdns) await stopProcess(pdns.pid, 10_000);
    expect(pdns && isAlive(pdns.pid)).toBe(false);
    await a.stop();
    await b.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers each client subnet with its own data center, with the zone’s short TTL', async () => {
    // The first query starts PowerDNS' checks of each edge's /readyz, in the background.
    await resolve('10.1.7.0/24');
    await expect.poll(() => a.checks > 0 && b.checks > 0, { timeout: 5000, interval: 100 }).toBe(true);
    await settled(() => resolve('10.1.7.0/24'), [a.host]);
    await settled(() => resolve('10.2.7.0/24'), [b.host]);
    const reply = await queryDns(listen, site, { subnet: '10.2.7.0/24' });
    expect(reply.answers[0]?.ttl).toBe(5);
    // The scope it answered for: the server says which subnet the answer holds for (ECS).
    expect(reply.scopePrefixLength).toBeGreaterThan(0);
    // And what it took the client to be.
    const who = await queryDns(listen, 'whoami.scaleout.test', { type: 'TXT', subnet: '10.1.7.0/24' });
    expect(who.answers[0]?.data).toContain('10.1.7.0');
  });

  it('drops a data center whose edge stops answering, and takes it back once it answers again', async () => {
    await settled(() => resolve('10.1.7.0/24'), [a.host]);
    const stopped = performance.now();
    await a.stop();
    await expect.poll(() => resolve('10.1.7.0/24'), { timeout: 10_000, interval: 100 }).toEqual([b.host]);
    const failover = performance.now() - stopped;
    await a.start();
    const started = performance.now();
    await expect.poll(() => resolve('10.1.7.0/24'), { timeout: 10_000, interval: 100 }).toEqual([a.host]);
    const failback = performance.now() - started;
    console.log(
      `geoDNS: a dc-a client resolved to dc-b ${Math.round(failover)} ms after dc-a's edge stopped, and back ${Math.round(failback)} ms after it returned (health checks every 1 s, TTL 5 s)`,
    );
    expect(await resolve('10.2.7.0/24')).toEqual([b.host]);
  }, 30_000);
});

describe('geoDNS with hysteresis: PowerDNS asks the health aggregator (ifurlextup), which drops a data center after 3 of 5 failed probes', () => {
  const o = 200 + Math.floor(Math.random() * 50);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'scaleout-dns-h-'));
  const a = edge(`127.${o}.0.12`);
  const b = edge(`127.${o}.16.12`);
  const listen = { host: `127.${o}.224.63`, port: 0 };
  const aggregatorAt = { host: `127.${o}.224.64`, port: 0 };
  let pdns: StartedProcess | undefined;
  let aggregator: Awaited<ReturnType<typeof startHealthAggregator>> | undefined;
  const resolve = async (subnet: string) =>
    (await queryDns(listen, site, { subnet, timeoutMs: 1000 })).answers.map((x) => x.data);

  beforeAll(async () => {
    const port = await portFreeOn([a.host, b.host]);
    a.port = port;
    b.port = port;
    listen.port = await portFreeOn([listen.host]);
    aggregatorAt.port = await portFreeOn([aggregatorAt.host]);
    await a.start();
    await b.start();
    aggregator = await startHealthAggregator({
      listen: aggregatorAt,
      targets: [
        { dataCenter: 'dc-a', url: `http://${a.host}:${port}/readyz` },
        { dataCenter: 'dc-b', url: `http://${b.host}:${port}/readyz` },
      ],
    });
    pdns = await startPowerDns(
      { name: 'dns', listen, zone: 'scaleout.test', site: 'www', ttl: 5 },
      [
        { name: 'dc-a', clients: [subnets['dc-a']], edge: { host: a.host, port } },
        { name: 'dc-b', clients: [subnets['dc-b']], edge: { host: b.host, port } },
      ],
      dir,
      path.join(dir, 'pdns.log'),
      aggregatorAt,
    );
  }, 30_000);
  afterAll(async () => {
    if (pdns) await stopProcess(pdns.pid, 10_000);
    await aggregator?.close();
    await a.stop();
    await b.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a blip of one probe keeps the data center; an outage drops it, and the metrics count both', async () => {
    await settled(() => resolve('10.1.7.0/24'), [a.host]);
    await settled(() => resolve('10.2.7.0/24'), [b.host]);
    // A blip: dc-a's edge gone for 400 ms (at most one probe every 500 ms fails).
    await a.stop();
    await new Promise((r) => setTimeout(r, 400));
    await a.start();
    const during: string[][] = [];
    for (let i = 0; i < 15; i++) {
      during.push(await resolve('10.1.7.0/24'));
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(during.every((x) => x[0] === a.host)).toBe(true);
    // An outage: dropped after 3 failed probes (≈ 1.5 s), then PowerDNS' next check of the aggregator (≤ 1 s).
    const stopped = performance.now();
    await a.stop();
    await expect.poll(() => resolve('10.1.7.0/24'), { timeout: 10_000, interval: 100 }).toEqual([b.host]);
    const failover = performance.now() - stopped;
    await a.start();
    const started = performance.now();
    await expect.poll(() => resolve('10.1.7.0/24'), { timeout: 10_000, interval: 100 }).toEqual([a.host]);
    const failback = performance.now() - started;
    console.log(
      `geoDNS with hysteresis: a 400 ms blip kept dc-a; an outage moved dc-a's clients to dc-b in ${Math.round(failover)} ms, and back ${Math.round(failback)} ms after dc-a returned`,
    );
    expect(failover).toBeGreaterThanOrEqual(1000);
    const metrics = await (await fetch(`http://${aggregatorAt.host}:${aggregatorAt.port}/metrics`)).text();
    expect(metrics).toMatch(/scaleout_dns_health_transitions_total\{dataCenter="dc-a",to="down"\} 1/);
    expect(metrics).toMatch(/scaleout_dns_health_transitions_total\{dataCenter="dc-a",to="up"\} 1/);
    expect(metrics).toMatch(/scaleout_dns_health_up\{dataCenter="dc-b"\} 1/);
    expect(metrics).toMatch(/scaleout_dns_health_probes_total\{dataCenter="dc-a",result="failed"\} [3-9]/);
  }, 40_000);

  it('never every data center down: dc-a lost, then dc-b failing its checks too, both keep resolving to dc-b', async () => {
    await settled(() => resolve('10.1.7.0/24'), [a.host]);
    await a.stop();
    await expect.poll(() => resolve('10.1.7.0/24'), { timeout: 10_000, interval: 100 }).toEqual([b.host]);
    // The survivor's readiness fails too (as it did behind writes waiting for its promotion): it answered
    // last, so it stays served; PowerDNS, given no group up, would answer dc-a's clients with dc-a.
    await b.stop();
    await expect
      .poll(
        async () => (await (await fetch(`http://${aggregatorAt.host}:${aggregatorAt.port}/status`)).json()) as never,
        {
          timeout: 10_000,
          interval: 100,
        },
      )
      .toMatchObject({ 'dc-a': { up: false, served: false }, 'dc-b': { up: false, served: true } });
    const answers: string[][] = [];
    for (let i = 0; i < 15; i++) {
      answers.push(await resolve('10.1.7.0/24'), await resolve('10.2.7.0/24'));
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(answers.every((x) => x[0] === b.host)).toBe(true);
    const up = await fetch(`http://${aggregatorAt.host}:${aggregatorAt.port}/up/dc-b`);
    expect(up.status).toBe(200);
    expect(await up.text()).toMatch(/served/);
    await b.start();
    await a.start();
    await expect.poll(() => resolve('10.1.7.0/24'), { timeout: 10_000, interval: 100 }).toEqual([a.host]);
  }, 40_000);
});
