import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runtimeApi, runtimeApiSocket } from '../../src/cluster/components/load-balancer/haproxy.ts';
import { appDatabase, appUser } from '../../src/cluster/components/postgres/server.ts';
import { redisCall } from '../../src/cluster/components/redis/server.ts';
import { isAlive, sleep } from '../../src/cluster/process.ts';
import { type ClusterState, queryPrimary, stateOf, updateState } from '../../src/cluster/run/index.ts';
import { controlTokenFile } from '../../src/cluster/run/private.ts';
import { allProcesses, type ProcessSpec, webServers } from '../../src/cluster/topology/index.ts';
import { Client, uniqueName } from '../support/app.ts';
import { startTopology } from '../support/cluster.ts';

/**
 * The operations plane of a running `stateless` topology, tried as a local
 * user without privileges would (`runuser -u nobody`) and as a web page in the
 * operator's browser would: every finding of the security review, each
 * refused. One topology for the file; it is left as it was found.
 */
type Topo = Awaited<ReturnType<typeof startTopology>>;
let topo: Topo;
const spec = <K extends ProcessSpec['kind']>(kind: K) =>
  allProcesses(topo.state.topology).filter((p): p is Extract<ProcessSpec, { kind: K }> => p.kind === kind);
const latest = (): ClusterState => stateOf(topo.runRoot, topo.state.topology.name) as ClusterState;
const token = () => readFileSync(controlTokenFile(topo.state.runDir), 'utf8').trim();
const url = (a: { host: string; port: number }) => `http://${a.host}:${a.port}`;

const asNobody = (...command: string[]) =>
  spawnSync('runuser', ['-u', 'nobody', '--', ...command], { encoding: 'utf8', timeout: 10_000 });

/** Sends one raw line to a TCP server and returns its first answer. */
function rawLine(at: { host: string; port: number }, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(at.port, at.host, () => socket.write(line));
    socket.setEncoding('utf8');
    socket.setTimeout(3000, () => socket.destroy(new Error('no answer')));
    socket.once('data', (d) => {
      socket.destroy();
      resolve(String(d));
    });
    socket.once('error', reject);
  });
}

/** A TCP connection refused, or closed at once without an answer. */
function refused(at: { host: string; port: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(at.port, at.host);
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
    socket.once('close', () => resolve(true));
  });
}

beforeAll(async () => {
  topo = await startTopology('stateless', { webServers: 2 });
}, 240_000);

afterAll(async () => {
  const left = await topo?.stop();
  expect(left).toEqual([]);
}, 120_000);

describe('secrets in the run directory', () => {
  it('no file that holds a password or token can be read by another user; every file is 0600, every directory 0700', () => {
    const { runDir } = topo.state;
    const s = latest().secrets;
    const secrets = [s.superuser, s.app, s.replication, s.redis, s.sentinel, s.patroniRest, s.etcd, s.control];
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          expect(statSync(p).mode & 0o077, `${p} is a directory others can enter`).toBe(0);
          walk(p);
        } else if (entry.isFile()) {
          expect(statSync(p).mode & 0o077, `${p} is readable or writable by others`).toBe(0);
          files.push(p);
        }
      }
    };
    walk(runDir);
    // The run directory itself: root's, and the postgres group's to pass through (Patroni runs as postgres).
    expect(statSync(runDir).mode & 0o007).toBe(0);
    const holding = files.filter((f) => {
      const text = readFileSync(f, 'latin1');
      return secrets.some((x) => text.includes(x));
    });
    const names = holding.map((f) => path.relative(runDir, f));
    for (const expected of ['state.json', 'control.token', 'pg-1/patroni.yml', 'redis-durable-1/redis.conf']) {
      expect(names).toContain(expected);
    }
    expect(names.some((n) => n.startsWith('sentinel-1/'))).toBe(true);
    for (const f of holding) {
      const read = asNobody('cat', f);
      expect(read.status, `nobody read ${f}`).not.toBe(0);
    }
    expect(asNobody('ls', runDir).stderr).toMatch(/Permission denied/);
  });

  it("the app's database role is not a superuser, and PostgreSQL lets in only the topology's addresses", async () => {
    const roles = await queryPrimary<{ rolsuper: boolean; rolcreaterole: boolean }>(
      topo.state,
      'SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = $1',
      [appUser],
    );
    expect(roles.rows).toEqual([{ rolsuper: false, rolcreaterole: false }]);
    // Straight to a PostgreSQL server (through the database proxy, the connection would come from the proxy).
    const node = spec('patroni')[0];
    if (!node) throw new Error('no Patroni node');
    // From an address of no process of the topology, with the right password: no pg_hba entry.
    const from = (localAddress: string) =>
      new pg.Client({
        host: node.postgres.host,
        port: node.postgres.port,
        user: appUser,
        password: latest().secrets.app,
        database: appDatabase,
        stream: () => {
          const socket = new Socket();
          const connectTo = socket.connect.bind(socket);
          return Object.assign(socket, {
            connect: (port: number, host: string) => connectTo({ port, host, localAddress }),
          }) as Socket;
        },
      });
    const outsider = from('127.251.7.9');
    outsider.on('error', () => {});
    await expect(outsider.connect()).rejects.toThrow(/no pg_hba\.conf entry/);
    const insider = from('127.0.0.1');
    await insider.connect();
    expect((await insider.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await insider.end();
  });
});

describe('every server asks for the topology’s secrets', () => {
  it('every Redis server and Sentinel answers NOAUTH without the password, and works with it', async () => {
    const servers = [...spec('redis').map((r) => r.listen), ...spec('redisSentinel').map((r) => r.listen)];
    expect(servers.length).toBe(7);
    for (const at of servers) expect(await rawLine(at, 'PING\r\n'), `${at.host}:${at.port}`).toMatch(/^-NOAUTH/);
    const s = latest().secrets;
    for (const r of spec('redis')) expect(await redisCall({ ...r.listen, password: s.redis }, 'PING')).toBe('PONG');
    for (const r of spec('redisSentinel'))
      expect(await redisCall({ ...r.listen, password: s.sentinel }, 'PING')).toBe('PONG');
    // What the review did: plant a session for another user. Refused before any key is written.
    expect(await rawLine(spec('redis')[0]?.listen as never, 'SET session:x y\r\n')).toMatch(/^-NOAUTH/);
  });

  it("HAProxy's runtime API is a 0600 unix socket, not a TCP port", async () => {
    const [lb] = spec('loadBalancer');
    if (!lb) throw new Error('no balancer');
    // Where it listened before: the port after the stats page.
    expect(await refused({ host: lb.stats.host, port: lb.stats.port + 1 })).toBe(true);
    const socket = runtimeApiSocket(topo.state.runDir, lb);
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    const tried = asNobody(
      'python3',
      '-c',
      `import socket; s = socket.socket(socket.AF_UNIX); s.connect(${JSON.stringify(socket)}); print("connected")`,
    );
    expect(tried.stdout).not.toContain('connected');
    expect(tried.stderr).toMatch(/Permission/);
  });

  it("Patroni's unsafe REST endpoints and etcd's keys need the password", async () => {
    const [node] = spec('patroni');
    if (!node) throw new Error('no Patroni');
    for (const route of ['/restart', '/switchover', '/reinitialize']) {
      const res = await fetch(`${url(node.rest)}${route}`, { method: 'POST', body: '{}' });
      expect(res.status, route).toBe(401);
    }
    // Reads stay open (the database proxy's health checks use them).
    expect((await fetch(`${url(node.rest)}/cluster`)).status).toBe(200);
    const [etcd] = spec('etcd');
    if (!etcd) throw new Error('no etcd');
    const put = await fetch(`${url(etcd.client)}/v3/kv/put`, {
      method: 'POST',
      body: JSON.stringify({ key: Buffer.from('/service/x').toString('base64'), value: 'eA==' }),
    });
    expect(put.ok).toBe(false);
    expect(await put.text()).toMatch(/user name is empty/);
  });
});

describe('control APIs: token, Host, Origin', () => {
  const supervisorUrl = () => url(spec('supervisor')[0]?.listen as never);
  const dashboardUrl = () => url(spec('dashboard')[0]?.listen as never);
  const auth = () => ({ authorization: `Bearer ${token()}` });

  it('the supervisor answers 401 without the token on every route, 421 with a forged Host, 403 cross-site', async () => {
    const routes: [string, string][] = [
      ['GET', '/healthz'],
      ['GET', '/status'],
      ['GET', '/metrics'],
      ['POST', '/scale'],
      ['POST', '/autoscale'],
      ['POST', '/deploy'],
      ['POST', '/processes/web-1/restart'],
    ];
    for (const [method, route] of routes) {
      const res = await fetch(`${supervisorUrl()}${route}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body: method === 'POST' ? JSON.stringify({ web: 3 }) : undefined,
      });
      expect(res.status, `${method} ${route}`).toBe(401);
    }
    // A DNS-rebinding page: its own name as the Host, even with the token (it cannot have it, but still).
    const forged = await rawHttp(spec('supervisor')[0]?.listen as never, 'GET /status', {
      Host: 'evil.test:8091',
      Authorization: `Bearer ${token()}`,
    });
    expect(forged).toMatch(/^HTTP\/1\.1 421/);
    // A cross-site simple POST (what a form or a no-cors fetch sends), even with the token.
    for (const route of ['/scale', '/processes/web-1/restart']) {
      const crossSite = await fetch(`${supervisorUrl()}${route}`, {
        method: 'POST',
        headers: { ...auth(), origin: 'http://evil.test', 'content-type': 'text/plain' },
        body: '{"web":3}',
      });
      expect(crossSite.status, route).toBe(403);
    }
    expect(webServers(latest().topology)).toHaveLength(2);
    expect((await fetch(`${supervisorUrl()}/status`, { headers: auth() })).status).toBe(200);
  });

  it('an invalid scale is refused and leaves the autoscaler on', async () => {
    for (const body of [{ web: 0 }, { web: 99 }, { web: 'x' }, {}]) {
      const res = await fetch(`${supervisorUrl()}/scale`, {
        method: 'POST',
        headers: { ...auth(), 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/nothing changed/);
    }
    expect(latest().topology.options.autoscale?.enabled).toBe(true);
  });

  it('deploys only a git checkout of this project owned by the operator', async () => {
    const deploy = (checkout: string) =>
      fetch(`${supervisorUrl()}/deploy`, {
        method: 'POST',
        headers: { ...auth(), 'content-type': 'application/json' },
        body: JSON.stringify({ checkout, readySeconds: 5 }),
      });
    // What the review ran: any directory with a bin/scaleout.js, made by another user.
    const dir = path.join('/tmp', `scaleout-evil-${uniqueName()}`);
    expect(asNobody('sh', '-c', `mkdir -p ${dir}/bin && echo 'process.exit(0)' > ${dir}/bin/scaleout.js`).status).toBe(
      0,
    );
    try {
      const res = await deploy(dir);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/not a git checkout/);
      // A git checkout with this project's name, made by nobody: not the operator's.
      const ours = JSON.parse(readFileSync('package.json', 'utf8')).name as string;
      const made = asNobody('sh', '-c', `cd ${dir} && git init -q && echo '{"name":"${ours}"}' > package.json`);
      expect(made.status).toBe(0);
      const owned = await deploy(dir);
      expect(owned.status).toBe(400);
      expect(((await owned.json()) as { error: string }).error).toMatch(/owned by uid/);
    } finally {
      spawnSync('rm', ['-rf', dir]);
    }
    const before = latest()
      .processes.filter((p) => p.kind === 'web')
      .map((p) => p.pid);
    expect(before.every(isAlive)).toBe(true);
  });

  it('the dashboard answers 401 without the token, 421 with a forged Host, and keeps the token in a cookie', async () => {
    for (const route of ['/', '/api/topology', '/uplot.js']) {
      expect((await fetch(`${dashboardUrl()}${route}`)).status, route).toBe(401);
    }
    const kill = await fetch(`${dashboardUrl()}/api/processes/web-1/kill`, {
      method: 'POST',
      headers: { 'x-dashboard': '1' },
    });
    expect(kill.status).toBe(401);
    const forged = await rawHttp(spec('dashboard')[0]?.listen as never, 'GET /api/topology', {
      Host: 'evil.test',
      Authorization: `Bearer ${token()}`,
    });
    expect(forged).toMatch(/^HTTP\/1\.1 421/);
    const cross = await fetch(`${dashboardUrl()}/api/processes/web-1/kill`, {
      method: 'POST',
      headers: { ...auth(), 'x-dashboard': '1', origin: 'http://evil.test' },
    });
    expect(cross.status).toBe(403);
    // The URL `up` prints: the token moves into an HttpOnly, SameSite=Strict cookie, out of the address bar.
    const open = await fetch(`${dashboardUrl()}/?token=${token()}`, { redirect: 'manual' });
    expect(open.status).toBe(303);
    expect(open.headers.get('location')).toBe('/');
    const cookie = open.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const page = await fetch(`${dashboardUrl()}/api/topology`, { headers: { cookie: cookie.split(';')[0] ?? '' } });
    expect(page.status).toBe(200);
    expect(webServers(latest().topology).every((w) => latest().processes.some((p) => p.name === w.name))).toBe(true);
  });

  it('a kill from the dashboard signals a PID only while it is still the process recorded', async () => {
    const victim = latest().processes.find((p) => p.kind === 'hostExporter');
    if (!victim?.startTime) throw new Error('no host exporter with a start time');
    // As if the exporter had died and its PID been reused by another process.
    updateState(topo.state.runDir, (s) => {
      const p = s.processes.find((x) => x.name === victim.name);
      if (p) p.startTime = (victim.startTime ?? 0) - 1;
    });
    try {
      const res = await fetch(`${dashboardUrl()}/api/processes/${victim.name}/kill`, {
        method: 'POST',
        headers: { ...auth(), 'x-dashboard': '1' },
      });
      expect(res.status).toBe(409);
      expect(isAlive(victim.pid)).toBe(true);
    } finally {
      updateState(topo.state.runDir, (s) => {
        const p = s.processes.find((x) => x.name === victim.name);
        if (p) p.startTime = victim.startTime;
      });
    }
  });
});

/** One raw HTTP request (so the Host header is ours to forge); returns the answer's first bytes. */
function rawHttp(at: { host: string; port: number }, requestLine: string, headers: Record<string, string>) {
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return rawLine(at, `${requestLine} HTTP/1.1\r\n${head}Connection: close\r\n\r\n`);
}

describe('slow bodies', () => {
  it('16 connections trickling bodies for 30 s leave the web tier as it was, and are cut', async () => {
    const lb = spec('loadBalancer')[0];
    if (!lb) throw new Error('no balancer');
    const end = Date.now() + 30_000;
    let cut = 0;
    const answers = new Map<string, number>();
    // One slow sender: headers (and `head` bytes of body at once), then a byte every 5 s; when cut, it comes back.
    // A small head waits in the balancer's buffer; 20 kB overflows it (16 kB), so that body reaches a web server.
    const sender = async (head: number) => {
      while (Date.now() < end) {
        await new Promise<void>((resolve) => {
          const socket = connect(lb.listen.port, lb.listen.host, () => {
            socket.write(
              `POST /api/v1/sessions HTTP/1.1\r\nHost: ${lb.listen.host}:${lb.listen.port}\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{${' '.repeat(head)}`,
            );
          });
          const drip = setInterval(() => socket.write(' '), 5000);
          const stop = setTimeout(() => socket.destroy(), Math.max(0, end - Date.now()));
          socket.setEncoding('latin1');
          socket.on('data', (d: string) => {
            const status = /^HTTP\/1\.1 (\d{3})/.exec(d)?.[1] ?? 'other';
            answers.set(status, (answers.get(status) ?? 0) + 1);
          });
          socket.on('error', () => {});
          socket.on('close', () => {
            clearInterval(drip);
            clearTimeout(stop);
            if (Date.now() < end) cut++;
            resolve();
          });
        });
      }
    };
    const counts: number[] = [];
    const metrics: number[] = [];
    const receiving: number[] = [];
    const watch = (async () => {
      while (Date.now() < end + 6000) {
        counts.push(webServers(latest().topology).length);
        const res = await fetch(`${url(spec('supervisor')[0]?.listen as never)}/status`, {
          headers: { authorization: `Bearer ${token()}` },
        });
        metrics.push(((await res.json()) as { metric: number }).metric);
        let n = 0;
        for (const w of webServers(latest().topology)) {
          const h = await fetch(`${url(w.listen)}/healthz`);
          n += ((await h.json()) as { receivingBody: number }).receivingBody;
        }
        receiving.push(n);
        await sleep(1000);
      }
    })();
    await Promise.all([
      ...Array.from({ length: 8 }, () => sender(0)),
      ...Array.from({ length: 8 }, () => sender(20_000)),
      watch,
    ]);
    // The web tier's count never moved, and its in-flight metric stayed below the target (2 per server):
    // the bodies that reached a server (it counted them as still arriving) were left out of it.
    expect(new Set(counts)).toEqual(new Set([2]));
    expect(Math.max(...receiving)).toBeGreaterThanOrEqual(4);
    expect(Math.max(...metrics)).toBeLessThan(1);
    // The balancer ended each small slow request itself (408 after 10 s): 8 senders over 30 s, cut about twice each.
    expect(answers.get('408') ?? 0).toBeGreaterThanOrEqual(8);
    expect(cut).toBeGreaterThanOrEqual(8);
    // The site still answers everyone else.
    expect((await new Client(topo.url).request('GET', '/healthz')).status).toBe(200);
  }, 60_000);

  it('one address holds at most its share of the balancer’s connections', async () => {
    const lb = spec('loadBalancer')[0];
    if (!lb) throw new Error('no balancer');
    const cap = topo.state.topology.options.maxConnectionsPerClient;
    // This process's connections to the balancer already open (earlier tests' keep-alive ones): they
    // count towards the cap too, as the balancer's stick table says.
    const table = await runtimeApi({ runDir: topo.state.runDir, lb }, 'show table public');
    const already = Number(/key=127\.0\.0\.1 .*conn_cur=(\d+)/.exec(table)?.[1] ?? 0);
    const firstChecked = Math.max(0, cap - already - 10);
    const open: Socket[] = [];
    let refusedAt = -1;
    try {
      // Connections from this address, until the balancer closes one at once.
      for (let i = 0; i < cap + 10 && refusedAt < 0; i++) {
        // The balancer may close a connection over the cap before this process saw it connected:
        // then it is reset during the connect (ECONNRESET), which is the same refusal.
        const s = await new Promise<Socket | 'reset'>((resolve, reject) => {
          const c = connect(lb.listen.port, lb.listen.host, () => resolve(c));
          c.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? resolve('reset') : reject(err)));
        });
        if (s === 'reset') {
          if (i < firstChecked) throw new Error(`connection ${i} reset, before the cap's range (${firstChecked})`);
          refusedAt = i;
          break;
        }
        open.push(s);
        await new Promise((r) => setImmediate(r));
        if (i >= firstChecked) {
          const closed = await new Promise<boolean>((resolve) => {
            if (s.destroyed || s.readyState !== 'open') return resolve(true);
            const t = setTimeout(() => resolve(false), 100);
            s.once('close', () => {
              clearTimeout(t);
              resolve(true);
            });
          });
          if (closed) refusedAt = i;
        }
      }
      // Refused at the cap, counting those already open (a few may have closed meanwhile: idle keep-alives).
      expect(refusedAt).toBeGreaterThanOrEqual(cap - already - 1);
      expect(refusedAt).toBeLessThanOrEqual(cap);
      // The ones before it are still open: the cap closes only what is over it.
      expect(open.slice(0, firstChecked).every((s) => !s.destroyed && s.readyState === 'open')).toBe(true);
    } finally {
      for (const s of open) s.destroy();
    }
    await sleep(500);
    expect((await fetch(`${topo.url}/healthz`)).status).toBe(200);
  }, 60_000);
});

describe("Prometheus' API", () => {
  it("lets the dashboard's page read it, and no other site (no Access-Control-Allow-Origin: *)", async () => {
    const prom = spec('prometheus')[0];
    const dash = spec('dashboard')[0];
    if (!prom || !dash) throw new Error('no Prometheus or dashboard');
    const allowed = async (origin: string) =>
      (await fetch(`${url(prom.listen)}/api/v1/query?query=up`, { headers: { origin } })).headers.get(
        'access-control-allow-origin',
      );
    expect(await allowed('http://evil.test')).toBeNull();
    expect(await allowed(url(dash.listen))).toBe(url(dash.listen));
  });
});

describe('the site behind the balancer', () => {
  it('refuses a cross-site log-in with a forged X-Forwarded-Host (403), and a forged lsn cookie changes nothing', async () => {
    const res = await fetch(`${topo.url}/api/v1/sessions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        origin: 'http://evil.test',
        'x-forwarded-host': 'evil.test',
      },
      body: JSON.stringify({ username: 'nobody_here', password: 'whatever it is' }),
    });
    expect(res.status).toBe(403);
    const read = await fetch(`${topo.url}/api/v1/users/nobody_here`, {
      headers: { cookie: 'lsn=FFFFFFFF/FFFFFFFF' },
    });
    expect(read.status).toBe(404);
  });
});
