import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
    // The first checks of a new record count every address as down: wait for them.
    await expect.poll(() => resolve('10.1.7.0/24'), { timeout: 5000, interval: 200 }).toEqual([a.host]);
    await expect.poll(() => resolve('10.2.7.0/24'), { timeout: 5000, interval: 200 }).toEqual([b.host]);
    // PowerDNS checks each edge's /readyz itself, in the background.
    expect(a.checks).toBeGreaterThan(0);
    expect(b.checks).toBeGreaterThan(0);
    const reply = await queryDns(listen, site, { subnet: '10.2.7.0/24' });
    expect(reply.answers[0]?.ttl).toBe(5);
    // The scope it answered for: the server says which subnet the answer holds for (ECS).
    expect(reply.scopePrefixLength).toBeGreaterThan(0);
    // And what it took the client to be.
    const who = await queryDns(listen, 'whoami.scaleout.test', { type: 'TXT', subnet: '10.1.7.0/24' });
    expect(who.answers[0]?.data).toContain('10.1.7.0');
  });

  it('drops a data center whose edge stops answering, and takes it back once it answers again', async () => {
    await expect.poll(() => resolve('10.1.7.0/24'), { timeout: 5000, interval: 200 }).toEqual([a.host]);
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
