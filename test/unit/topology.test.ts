import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { edgesOf } from '../../src/cluster/components/dns/index.ts';
import { dbProxyConfig } from '../../src/cluster/components/load-balancer/haproxy.ts';
import { balancerConfig } from '../../src/cluster/components/load-balancer/index.ts';
import { patroniConfig } from '../../src/cluster/components/patroni/cluster.ts';
import { prometheusConfig, writeDynamicTargets } from '../../src/cluster/components/prometheus/index.ts';
import { redisConfig, sentinelConfig } from '../../src/cluster/components/redis/server.ts';
import { varnish } from '../../src/cluster/components/varnish/index.ts';
import { dataCenterRoles, replicationLink } from '../../src/cluster/datacenter/roles.ts';
import { appConfig, blobDirOf, contextFor } from '../../src/cluster/run/context.ts';
import { stopOrder } from '../../src/cluster/run/orchestrator.ts';
import {
  allProcesses,
  buildPreset,
  octetFor,
  type PresetOptions,
  processesOf,
  publicUrl,
  topologySchema,
} from '../../src/cluster/topology/index.ts';
import { lsnReached, parseLsn } from '../../src/platform/db/consistency.ts';

/** The dynamic configuration a node's YAML bootstraps (one line of JSON). */
const dcsOf = (yml: string) => JSON.parse(/\n {2}dcs: (.*)\n/.exec(yml)?.[1] ?? '{}');

const kinds = (preset: 'single' | 'db' | 'lb', o: PresetOptions = {}) =>
  allProcesses(buildPreset(preset, o)).map((p) => p.kind);

describe('presets are data', () => {
  it('single, db and lb hold the processes of their chapter step', () => {
    expect(kinds('single')).toEqual(['web', 'hostExporter', 'prometheus', 'dashboard', 'supervisor']);
    expect(kinds('db')).toEqual([
      'postgres',
      'web',
      'postgresExporter',
      'hostExporter',
      'prometheus',
      'dashboard',
      'supervisor',
    ]);
    expect(
      allProcesses(buildPreset('lb'))
        .filter((p) => p.kind === 'postgresExporter')
        .map((p) => p.name),
    ).toEqual(['pg-1-exporter', 'pg-2-exporter', 'pg-3-exporter']);
    expect(kinds('lb')).toEqual([
      'etcd',
      'patroni',
      'patroni',
      'patroni',
      'dbProxy',
      'web',
      'web',
      'loadBalancer',
      'postgresExporter',
      'postgresExporter',
      'postgresExporter',
      'hostExporter',
      'prometheus',
      'dashboard',
      'supervisor',
    ]);
    expect(kinds('lb', { supervise: false })).not.toContain('supervisor');
  });

  it('queue is cdn plus workers, in their own address block, and jobs moved out of the web servers', () => {
    const t = buildPreset('queue', { octet: 62 });
    const cdn = allProcesses(buildPreset('cdn', { octet: 62 })).map((p) => p.kind);
    const ws = allProcesses(t).filter((p) => p.kind === 'worker');
    expect(
      allProcesses(t)
        .map((p) => p.kind)
        .filter((k) => k !== 'worker'),
    ).toEqual(cdn);
    expect(ws.map((w) => [w.name, w.kind === 'worker' && w.listen.host])).toEqual([
      ['worker-1', '127.62.6.1'],
      ['worker-2', '127.62.6.2'],
    ]);
    expect(t.options.jobs).toBe('workers');
    expect(buildPreset('cdn').options.jobs).toBe('web');
    expect(t.options.workerAutoscale).toMatchObject({ min: 1, max: 4, target: 1, enabled: true });
    expect(buildPreset('queue', { workers: 0 }).dataCenters[0]?.processes.some((p) => p.kind === 'worker')).toBe(false);
  });

  it('stateless is cache plus the autoscaler policy, within 16 web servers', () => {
    const t = buildPreset('stateless', { octet: 61, autoscale: { max: 4, target: 1.5 } });
    expect(allProcesses(t).filter((p) => p.kind === 'redis')).toHaveLength(4);
    expect(allProcesses(t).filter((p) => p.kind === 'supervisor')).toHaveLength(1);
    expect(t.options.autoscale).toEqual({
      min: 2,
      max: 4,
      target: 1.5,
      tolerance: 0.1,
      stabilizationSeconds: 60,
      periodSeconds: 5,
      enabled: true,
    });
    expect(buildPreset('cache').options.autoscale).toBeUndefined();
    expect(() => buildPreset('lb', { webServers: 17 })).toThrow(/16/);
  });

  it('gives every server its own loopback address and only the load balancer the public one', () => {
    const t = buildPreset('lb', { name: 'demo', octet: 77 });
    const hosts = allProcesses(t).map((p) =>
      'listen' in p
        ? p.listen.host
        : 'postgres' in p
          ? p.postgres.host
          : 'client' in p
            ? p.client.host
            : p.primary.host,
    );
    expect(new Set(hosts).size).toBe(hosts.length);
    expect(hosts.every((h) => h.startsWith('127.77.'))).toBe(true);
    expect(publicUrl(t)).toBe('http://127.77.0.1:8080');
    expect(topologySchema.parse(JSON.parse(JSON.stringify(t)))).toEqual(t);
  });

  it('derives different addresses for different names, and takes options', () => {
    expect(octetFor('alpha')).not.toBe(octetFor('beta'));
    const t = buildPreset('lb', { webServers: 3, synchronous: false, patroniTtl: 10, port: 9000 });
    expect(allProcesses(t).filter((p) => p.kind === 'web')).toHaveLength(3);
    expect(t.options).toMatchObject({ synchronous: false, patroniTtl: 10 });
    expect(publicUrl(t).endsWith(':9000')).toBe(true);
  });
});

describe('the cache preset', () => {
  it('is lb plus a durable and a cache Redis, each master + replica, 3 Sentinels and an exporter per Redis', () => {
    const t = buildPreset('cache', { octet: 60, cacheEviction: 'allkeys-lfu' });
    const all = allProcesses(t);
    const redis = all.filter((p) => p.kind === 'redis');
    expect(redis.map((r) => `${r.name}:${r.tier}:${r.replicaOf ?? 'master'}`)).toEqual([
      'redis-durable-1:durable:master',
      'redis-durable-2:durable:redis-durable-1',
      'redis-cache-1:cache:master',
      'redis-cache-2:cache:redis-cache-1',
    ]);
    expect(all.filter((p) => p.kind === 'redisSentinel')).toHaveLength(3);
    expect(all.filter((p) => p.kind === 'redisExporter')).toHaveLength(4);
    expect(all.filter((p) => p.kind === 'patroni')).toHaveLength(3);
    const durable = redis[0];
    const cache = redis[2];
    if (durable?.kind !== 'redis' || cache?.kind !== 'redis') throw new Error('no redis');
    expect(redisConfig(t, durable, '/d', 'pw')).toMatch(
      /appendonly yes\nappendfsync everysec\nmaxmemory-policy noeviction/,
    );
    expect(redisConfig(t, cache, '/d', 'pw')).toMatch(/appendonly no\nmaxmemory 64mb\nmaxmemory-policy allkeys-lfu/);
    const sentinel = all.find((p) => p.kind === 'redisSentinel');
    if (sentinel?.kind !== 'redisSentinel') throw new Error('no sentinel');
    expect(redisConfig(t, durable, '/d', 'pw')).toContain('requirepass pw\nmasterauth pw');
    const conf = sentinelConfig(sentinel, [durable, cache], '/s', { redis: 'pw', sentinel: 'spw' });
    expect(conf).toContain('requirepass spw\nsentinel sentinel-pass spw');
    expect(conf).toContain(
      `sentinel monitor scaleout-durable ${durable.listen.host} 6379 2\nsentinel auth-pass scaleout-durable pw`,
    );
    expect(conf).toContain(`sentinel monitor scaleout-cache ${cache.listen.host} 6379 2`);
  });
});

describe('rendered configs', () => {
  const t = buildPreset('lb', { octet: 50 });
  const all = allProcesses(t);
  const nodes = all.filter((p) => p.kind === 'patroni');
  const secrets = { superuser: 's', replication: 'r', rewind: 'w', app: 'a', patroniRest: 'p', etcd: 'e' };

  it('HAProxy checks /readyz, retries, and never replays a POST', () => {
    const lb = all.find((p) => p.kind === 'loadBalancer');
    if (lb?.kind !== 'loadBalancer') throw new Error('no lb');
    const cfg = balancerConfig(t, lb, '/run/x');
    expect(cfg).toContain('option httpchk GET /readyz');
    expect(cfg).toContain('option redispatch');
    expect(cfg).toMatch(/retry-on conn-failure empty-response/);
    expect(cfg).toContain('http-request disable-l7-retry if METH_POST');
    expect(cfg).toContain('server web-1 127.50.1.1:3000 check\n');
    expect(cfg).toContain('bind 127.50.0.1:8080');
    // A slot for every server the tier may grow to; those not running are in maintenance.
    expect(cfg).toContain('server web-3 127.50.1.3:3000 check disabled\n');
    expect(cfg).toContain('server web-16 127.50.1.16:3000 check disabled');
    expect(cfg.match(/^ {4}server web-\d+ .* check/gm)).toHaveLength(16);
    // The same slots as backups without checks: used only when every checked server is down.
    expect(cfg).toContain('option allbackups');
    expect(cfg).toContain('server web-1-backup 127.50.1.1:3000 backup\n');
    expect(cfg).toContain('server web-16-backup 127.50.1.16:3000 backup disabled');
  });

  it('the database proxy follows Patroni: /primary for writes, /replica for reads', () => {
    const proxy = all.find((p) => p.kind === 'dbProxy');
    if (proxy?.kind !== 'dbProxy') throw new Error('no proxy');
    const cfg = dbProxyConfig(proxy, nodes as never);
    expect(cfg).toContain('option httpchk OPTIONS /primary');
    expect(cfg).toContain('option httpchk OPTIONS /replica');
    expect(cfg).toContain('server pg-1 127.50.2.1:5432 maxconn 200 check addr 127.50.2.1 port 8008');
  });

  it('Patroni uses the etcd3 API, the TTL and synchronous mode of the topology', () => {
    const etcd = all.find((p) => p.kind === 'etcd');
    const yml = patroniConfig(t, nodes[0] as never, etcd as never, '/tmp/x', secrets);
    expect(yml).toContain('etcd3:\n  hosts: 127.50.3.1:2379');
    // Unsafe REST endpoints need the password; pg_hba lets in only the topology's addresses, with a password.
    expect(yml).toContain('authentication: {username: scaleout, password: "p"}');
    expect(yml).not.toContain('127.0.0.0/8');
    expect(yml).toContain('- host all all 127.0.0.1/32 scram-sha-256');
    expect(yml).toContain('- host all all 127.50.2.1/32 scram-sha-256');
    const dcs = dcsOf(yml);
    expect(dcs.ttl).toBe(5);
    expect(dcs.synchronous_mode).toBe(true);
    expect(dcs.postgresql.use_pg_rewind).toBe(true);
    expect(dcs.standby_cluster).toBeUndefined();
  });

  it("a standby cluster's node streams from standbyOf, asynchronously, and its proxy reads from every node", () => {
    const etcd = all.find((p) => p.kind === 'etcd');
    const standby = nodes.map((n) => ({ ...n, standbyOf: { host: '127.50.18.120', port: 5000 } }));
    const yml = patroniConfig(t, standby[0] as never, etcd as never, '/tmp/x', secrets);
    const dcs = dcsOf(yml);
    expect(dcs.standby_cluster).toEqual({ host: '127.50.18.120', port: 5000, create_replica_methods: ['basebackup'] });
    // Patroni runs no synchronous replication inside a standby cluster.
    expect(dcs.synchronous_mode).toBe(false);
    const proxy = all.find((p) => p.kind === 'dbProxy');
    if (proxy?.kind !== 'dbProxy') throw new Error('no proxy');
    expect(dbProxyConfig(proxy, standby as never)).toContain('option httpchk OPTIONS /read-only');
  });

  it('refuses a topology with two processes of one name, even in different data centers', () => {
    const topology = buildPreset('lb', { name: 'dup', octet: 50 });
    const [dc] = topology.dataCenters;
    const web = dc?.processes.find((p) => p.kind === 'web');
    expect(() =>
      topologySchema.parse({
        ...topology,
        dataCenters: [
          ...topology.dataCenters,
          { name: 'dc2', processes: [{ ...web, listen: { host: '127.50.17.1', port: 3000 } }] },
        ],
      }),
    ).toThrow(/web-1/);
  });
});

describe('LSNs', () => {
  it('parses and compares WAL positions', () => {
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('1/0')).toBe(2n ** 32n);
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) + 0xb374d848n);
    expect(parseLsn('nonsense')).toBeNull();
    expect(lsnReached('16/B374D848', '16/B374D847')).toBe(true);
    expect(lsnReached('2/0', '10/0')).toBe(false);
    expect(lsnReached('A/0', '9/FFFFFFFF')).toBe(true);
  });
});

describe('Prometheus follows the web tier', () => {
  it('scrapes the supervisor, and the web servers from a file that scaling rewrites', () => {
    const t = buildPreset('stateless', { octet: 62, name: 'promtest' });
    const cfg = prometheusConfig(t, '/run/promtest');
    expect(cfg).toContain("file_sd_configs:\n      - files: ['web-targets.json']");
    expect(cfg).toMatch(/job_name: supervisor[\s\S]*127\.62\.228\.3:8091/);
    // The supervisor's /metrics asks for the run's token, like its other routes.
    expect(cfg).toContain(
      "job_name: supervisor\n    metrics_path: /metrics\n    authorization:\n      credentials_file: '/run/promtest/control.token'",
    );
    expect(cfg).not.toContain('127.62.1.1:9464');
    const runDir = mkdtempSync(path.join(os.tmpdir(), 'promtest-'));
    mkdirSync(path.join(runDir, 'prometheus'));
    writeDynamicTargets(t, runDir);
    const targets = JSON.parse(readFileSync(path.join(runDir, 'prometheus', 'web-targets.json'), 'utf8'));
    expect(targets.map((x: { targets: string[] }) => x.targets[0])).toEqual(['127.62.1.1:9464', '127.62.1.2:9464']);
    expect(targets[0].labels).toEqual({ process: 'web-1', kind: 'web', topology: 'promtest', dataCenter: 'dc1' });
    rmSync(runDir, { recursive: true, force: true });
  });
});

describe('multi-dc', () => {
  const t = buildPreset('multi-dc', { name: 'mdc-unit', octet: 61 });
  const all = allProcesses(t);
  const proxies = all.filter((p) => p.kind === 'dbProxy');

  it('two data centers with their names on their processes, and the DNS in the global scope', () => {
    expect(t.dataCenters.map((d) => d.name)).toEqual(['dc-a', 'dc-b']);
    for (const dc of t.dataCenters)
      for (const p of dc.processes) expect(p.name.startsWith(`${dc.name}-`), p.name).toBe(true);
    expect(t.global.processes.map((p) => p.kind)).toContain('dns');
    // dc-b's nodes are a standby cluster streaming from dc-b's link, whose target is dc-a's own primary port.
    const link = all.find((p) => p.name === 'dc-b-pg-link');
    const a = proxies.find((p) => p.name === 'dc-a-db-proxy');
    if (link?.kind !== 'delayProxy' || a?.kind !== 'dbProxy') throw new Error('no link');
    expect(link.target).toEqual(a.localPrimary);
    for (const n of all.filter((p) => p.kind === 'patroni' && p.name.startsWith('dc-b-')))
      expect((n as { standbyOf?: unknown }).standbyOf).toEqual(link.listen);
  });

  it('each data center has a replication link to the other’s own primary port; the witness is global', () => {
    const a = proxies.find((p) => p.name === 'dc-a-db-proxy');
    const b = proxies.find((p) => p.name === 'dc-b-db-proxy');
    if (a?.kind !== 'dbProxy' || b?.kind !== 'dbProxy') throw new Error('no proxies');
    expect(replicationLink(t, 'dc-a').target).toEqual(b.localPrimary);
    expect(replicationLink(t, 'dc-b').target).toEqual(a.localPrimary);
    expect(t.global.processes.find((p) => p.kind === 'witness')).toMatchObject({
      automatic: true,
      failoverAfterMs: 5000,
    });
    // dc-a holds the primary at start (its cluster is no standby cluster); a failover's record says otherwise.
    expect(dataCenterRoles({ topology: t })).toEqual({ primary: 'dc-a', fenced: [] });
    const after = { primary: 'dc-b', fenced: ['dc-a'] };
    expect(dataCenterRoles({ topology: t, dataCenterRoles: after })).toEqual(after);
  });

  it("each data center's photo sync sends to the other's through its own photo link; each its own photo store", () => {
    for (const [from, to] of [
      ['dc-a', 'dc-b'],
      ['dc-b', 'dc-a'],
    ]) {
      const mine = all.find((p) => p.name === `${from}-photo-sync`);
      const theirs = all.find((p) => p.name === `${to}-photo-sync`);
      const link = all.find((p) => p.name === `${from}-photo-link`);
      if (mine?.kind !== 'photoSync' || theirs?.kind !== 'photoSync' || link?.kind !== 'delayProxy')
        throw new Error('no photo sync');
      expect(mine.peer).toEqual(theirs.listen);
      expect(mine.via).toEqual(link.listen);
      expect(link).toMatchObject({ target: theirs.listen, purpose: 'photos', delayMs: 20 });
    }
    const state = { runDir: '/run/x', topology: t };
    expect(blobDirOf(state, 'dc-a')).toBe('/run/x/blobs/dc-a');
    expect(blobDirOf(state, 'dc-b')).toBe('/run/x/blobs/dc-b');
    expect(blobDirOf({ runDir: '/run/y', topology: buildPreset('cache', { name: 'one-dc', octet: 62 }) }, 'dc1')).toBe(
      '/run/y/blobs',
    );
    // Each data center's links lead to itself: to its edge.
    const edge = (dc: string) => all.find((p) => p.kind === 'varnish' && p.name === `${dc}-edge`);
    for (const dc of ['dc-a', 'dc-b']) {
      const e = edge(dc);
      if (e?.kind !== 'varnish') throw new Error('no edge');
      expect(publicUrl(t, dc)).toBe(`http://${e.listen.host}:${e.listen.port}`);
    }
    expect(publicUrl(t)).toBe(publicUrl(t, 'dc-a'));
  });

  it("each data center has its edge in front of its balancer: the DNS answers it; a web server purges both data centers' edges, its own first", () => {
    const edgeOf = (dc: string) => {
      const [e] = processesOf(t, 'varnish', { dataCenter: dc });
      const [lb] = processesOf(t, 'loadBalancer', { dataCenter: dc });
      if (!e || !lb?.fromEdge) throw new Error(`no edge before ${dc}'s balancer`);
      expect(e.listen.host).not.toBe(lb.listen.host);
      return e;
    };
    const [a, b] = [edgeOf('dc-a'), edgeOf('dc-b')];
    expect(edgesOf(t, {}).map((d) => [d.name, d.edge])).toEqual([
      ['dc-a', a.listen],
      ['dc-b', b.listen],
    ]);
    const state = { topology: t, runDir: '/run/x', secrets: { edge: 'e' } } as never;
    const urls = (dc: string) =>
      String(varnish.provides?.(processesOf(t, 'varnish', { dataCenter: dc }), contextFor(state, dc))?.edgeUrls).split(
        ',',
      );
    expect(urls('dc-a')).toEqual([
      `http://${a.listen.host}:${a.listen.port}`,
      `http://${b.listen.host}:${b.listen.port}`,
    ]);
    expect(urls('dc-b')).toEqual([
      `http://${b.listen.host}:${b.listen.port}`,
      `http://${a.listen.host}:${a.listen.port}`,
    ]);
    // Each edge has its exporter, in its own data center.
    for (const dc of ['dc-a', 'dc-b'])
      expect(processesOf(t, 'varnishExporter', { dataCenter: dc }).map((x) => x.edge)).toEqual([`${dc}-edge`]);
  });

  it('each data center has its own Redis with Sentinels and a worker; what crosses data centers stays in PostgreSQL', () => {
    expect(t.options.jobs).toBe('workers');
    const state = {
      topology: t,
      runDir: '/run/x',
      publicUrl: 'http://unused',
      secrets: { site: 's', redis: 'r', sentinel: 'n', edge: 'e' },
    } as never;
    for (const dc of ['dc-a', 'dc-b']) {
      const scope = { dataCenter: dc };
      expect(processesOf(t, 'redis', scope).map((r) => [r.name, r.tier, r.replicaOf])).toEqual([
        [`${dc}-redis-durable-1`, 'durable', undefined],
        [`${dc}-redis-durable-2`, 'durable', `${dc}-redis-durable-1`],
        [`${dc}-redis-cache-1`, 'cache', undefined],
        [`${dc}-redis-cache-2`, 'cache', `${dc}-redis-cache-1`],
      ]);
      const sentinels = processesOf(t, 'redisSentinel', scope);
      expect(sentinels.map((x) => x.name)).toEqual([1, 2, 3].map((i) => `${dc}-sentinel-${i}`));
      expect(processesOf(t, 'worker', scope).map((w) => w.name)).toEqual([`${dc}-worker-1`]);
      // A data center's web servers and worker find its own Sentinels, never the other's.
      expect(appConfig(state, dc)).toMatchObject({
        redisSentinels: sentinels.map((x) => `${x.listen.host}:${x.listen.port}`).join(','),
        durableState: 'database',
        cacheInvalidation: 'database',
        feedTimelines: 'off',
      });
    }
    // A topology of one data center keeps its sessions in Redis.
    const one = buildPreset('cache', { name: 'one-dc-redis', octet: 63 });
    expect(appConfig({ ...(state as object), topology: one } as never, 'dc1')).not.toHaveProperty('durableState');
    expect(processesOf(one, 'redis', { dataCenter: 'dc1' }).map((r) => r.name)).toEqual([
      'redis-durable-1',
      'redis-durable-2',
      'redis-cache-1',
      'redis-cache-2',
    ]);
  });

  it("a proxy's write port falls back to the other data center's primary, whose own port is never sent on", () => {
    const b = proxies.find((p) => p.name === 'dc-b-db-proxy');
    const a = proxies.find((p) => p.name === 'dc-a-db-proxy');
    if (b?.kind !== 'dbProxy' || a?.kind !== 'dbProxy') throw new Error('no proxies');
    const nodes = all.filter((p) => p.kind === 'patroni' && p.name.startsWith('dc-b-'));
    const cfg = dbProxyConfig(b, nodes as never);
    const writeLink = all.find((p) => p.name === 'dc-b-write-link') as { listen: { host: string; port: number } };
    expect(cfg).toContain(
      `server remote-primary ${writeLink.listen.host}:${writeLink.listen.port} maxconn 200 check addr ${a.primaryCheck?.host} port ${a.primaryCheck?.port} backup`,
    );
    const local = cfg.slice(cfg.indexOf('listen postgres_local_primary'), cfg.indexOf('frontend primary_check'));
    expect(local).not.toContain('backup');
    expect(cfg).toContain('monitor fail if { nbsrv(postgres_local_primary) lt 1 }');
  });
});

describe('stopping a topology', () => {
  it('stops in the reverse of the start order by stage, even for processes started again (listed last)', () => {
    const listed = [
      { name: 'dc-b-pg-1', kind: 'patroni' },
      { name: 'dc-b-web-1', kind: 'web' },
      { name: 'witness', kind: 'witness' },
      { name: 'supervisor', kind: 'supervisor' },
      // dc-a lost and started again by the supervisor: its entries come after the witness's.
      { name: 'dc-a-etcd', kind: 'etcd' },
      { name: 'dc-a-pg-1', kind: 'patroni' },
      { name: 'dc-a-web-2', kind: 'web' },
    ];
    expect(stopOrder(listed).map((p) => p.name)).toEqual([
      'supervisor',
      'witness',
      'dc-a-web-2',
      'dc-b-web-1',
      'dc-a-pg-1',
      'dc-b-pg-1',
      'dc-a-etcd',
    ]);
  });
});
