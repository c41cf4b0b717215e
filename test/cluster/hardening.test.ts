import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allProcesses, webMetrics } from '../../src/cluster/topology/index.ts';
import { Client, password, uniqueName } from '../support/app.ts';
import { startTopology } from '../support/cluster.ts';

type Topo = Awaited<ReturnType<typeof startTopology>>;

// The lb preset with the limits a public site has (no load-test overrides).
describe('lb preset with the default limits: the balancer alone says who the client is', () => {
  let topo: Topo;
  beforeAll(async () => {
    topo = await startTopology('lb', { replicas: 0, synchronous: false }, { SCALEOUT_LOG_LEVEL: 'info' });
  }, 180_000);
  afterAll(async () => {
    if (topo) expect(await topo.stop()).toEqual([]);
  }, 60_000);

  it('ignores a spoofed X-Forwarded-For: the 11th wrong password in a minute gets 429, whichever server counts it', async () => {
    const c = new Client(topo.url, { localAddress: '127.0.0.2' });
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      const res = await c.request('POST', '/api/v1/sessions', {
        json: { username: uniqueName(), password: 'not the password' },
        headers: {
          'x-forwarded-for': `203.0.113.${i + 1}`,
          'x-real-ip': `198.51.100.${i + 1}`,
          forwarded: `for=192.0.2.${i}`,
        },
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([...Array(10).fill(401), 429]);
    const signUps: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await c.request('POST', '/api/v1/users', {
        json: { username: uniqueName(), password },
        headers: { 'x-forwarded-for': `203.0.113.${100 + i}` },
      });
      signUps.push(res.status);
    }
    expect(signUps).toEqual([201, 201, 201, 201, 201, 429]);
  });

  it('signs forms with one secret: a page from one web server posts to the other', async () => {
    // Round robin alternates the two servers: with nothing in between, the page and its post land on different ones;
    // with one request in between, on the same one. Both work.
    for (const between of [0, 1]) {
      const c = new Client(topo.url, { localAddress: '127.0.0.3' });
      const name = uniqueName();
      const page = await c.request('GET', '/signup', { headers: { accept: 'text/html' } });
      const token = /name="_csrf" value="([^"]+)"/.exec(String(page.body))?.[1] ?? '';
      for (let i = 0; i < between; i++) expect((await c.request('GET', '/healthz')).status).toBe(200);
      const res = await c.request('POST', '/signup', {
        body: new URLSearchParams({ _csrf: token, username: name, password }).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
      });
      expect(res.status).toBe(303);
      expect((await c.request('GET', '/upload', { headers: { accept: 'text/html' } })).status).toBe(200);
    }
  });

  it('keeps /metrics off the public balancer; each web server serves it on its private listener', async () => {
    expect((await fetch(`${topo.url}/metrics`)).status).toBe(404);
    for (const web of allProcesses(topo.state.topology)) {
      if (web.kind !== 'web') continue;
      expect((await fetch(`http://${web.listen.host}:${web.listen.port}/metrics`)).status).toBe(404);
      const m = webMetrics(web);
      const res = await fetch(`http://${m.host}:${m.port}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('http_requests_total');
    }
  });
});
