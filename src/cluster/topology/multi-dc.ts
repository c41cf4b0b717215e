import { type Address, type AddressPlan, addressPlan, octetFor, type Scope } from './address.ts';
import type { PresetOptions } from './presets.ts';
import { redisTiers, webServerSpec, workerSpec } from './presets.ts';
import { type ProcessSpec, type SpecOf, type Topology, topologySchema } from './schema.ts';

/** The data centers of `multi-dc`: the first holds the primary at start, the second a standby cluster. */
export const multiDcNames = ['dc-a', 'dc-b'] as const;

/** The client subnets the DNS maps to each data center (EDNS Client Subnet: data in a query, never an address we send to). */
export const multiDcClients: Record<string, string[]> = { 'dc-a': ['10.1.0.0/16'], 'dc-b': ['10.2.0.0/16'] };

/** The site's zone and name in `multi-dc`. */
export const multiDcZone = { zone: 'scaleout.test', site: 'www' };

/** The default distance between the two data centers, each way (ms). */
export const interDcDelayMs = 20;

/** A data center's database proxy's ports that the other data center reaches. */
const crossPorts = (plan: AddressPlan, dc: Scope) => ({
  localPrimary: plan.at(dc, 'database', 100, 5002),
  primaryCheck: plan.at(dc, 'database', 100, 7001),
});

/**
 * A data center's database proxy: the usual two ports (writes, reads), and
 * two that the other data center reaches: its own primary only
 * (`localPrimary`: what the other's standby streams from and its writes
 * cross to; never itself routed elsewhere, so two proxies cannot send a
 * connection round in a loop) and `primaryCheck`, which answers 200 while
 * this data center has a primary. `remotePrimary`: the other data center's
 * primary through this one's write link, the write port's backup, taken when
 * no node here is primary (a standby data center's writes, or the old
 * primary's after a data-center failover).
 */
function databaseProxy(
  plan: AddressPlan,
  dc: Scope,
  remotePrimary: { via: SpecOf<'delayProxy'>; check: Address },
): SpecOf<'dbProxy'> {
  return {
    kind: 'dbProxy',
    name: plan.name(dc, 'db-proxy'),
    primary: plan.at(dc, 'database', 100, 5000),
    replicas: plan.at(dc, 'database', 100, 5001),
    stats: plan.at(dc, 'database', 100, 7000),
    ...crossPorts(plan, dc),
    remotePrimary: { via: remotePrimary.via.listen, check: remotePrimary.check },
  };
}

/**
 * `multi-dc` (step 1.7): two data centers behind the site's name. Each has
 * its etcd, a Patroni cluster of a primary and a replica (dc-b's a standby
 * cluster streaming from dc-a through a delayed link), its database proxy, a
 * web server, a balancer and a Varnish edge in front of it (what the DNS
 * answers; a photo's delete purges both data centers' edges). Every connection from one data center to the
 * other goes through a delay proxy of the data center it leaves: dc-b's
 * replication and its writes (its proxy's write port falls back to dc-a's
 * primary through `dc-b-write-link`), and dc-a's writes and replication
 * should dc-b hold the primary. The global scope holds the DNS (PowerDNS, the
 * closest healthy data center by client subnet), its health aggregator, the
 * witness (the data-center failover), Prometheus, the dashboard and the
 * supervisor. Each data center also has its Redis with Sentinels (its
 * cache, its rate limits, its job queue) and a worker that runs its queue's
 * jobs. Sessions and idempotency keys are in PostgreSQL here, so they cross
 * with its replication; each cache Redis hears of the other data center's
 * writes through the primary's NOTIFY (see `appConfig`). Photos are stored in each data
 * center's own store; its photo sync sends the other every photo file
 * through `dc-x-photo-link`, both ways.
 */
export function buildMultiDc(o: PresetOptions = {}): Topology {
  const name = o.name ?? 'multi-dc';
  const plan = addressPlan(o.octet ?? octetFor(name), multiDcNames);
  const [a, b] = multiDcNames.map((dataCenter) => ({ dataCenter })) as [Scope, Scope];
  const delayMs = o.interDcDelayMs ?? interDcDelayMs;
  const port = o.port ?? 8080;
  const replicas = o.replicas ?? 1;

  // Each data center's two links to the other's primary (through its database proxy's own-primary port):
  // replication, for while it is a standby cluster (dc-b at start; dc-a after a data-center failover), and writes.
  const link = (from: Scope, to: Scope, purpose: 'replication' | 'writes'): SpecOf<'delayProxy'> => {
    const [base, host] = purpose === 'replication' ? ['pg-link', 120] : ['write-link', 121];
    const [fromName, toName] = [from, to].map((d) => (d as { dataCenter: string }).dataCenter);
    return {
      kind: 'delayProxy',
      name: plan.name(from, base),
      listen: plan.at(from, 'database', host, 5000),
      target: crossPorts(plan, to).localPrimary,
      delayMs,
      carries: purpose === 'replication' ? `replication from ${toName}` : `${fromName}’s writes to ${toName}’s primary`,
      purpose,
    };
  };
  const links = (from: Scope, to: Scope) => ({
    replication: link(from, to, 'replication'),
    writes: link(from, to, 'writes'),
  });
  const [linksA, linksB] = [links(a, b), links(b, a)];
  // Photos: each data center its own store, and a photo sync that sends the other what it stored, through
  // its photo link.
  const photoSyncAt = (dc: Scope) => plan.at(dc, 'web', 110, 8095);
  const photoLink = (from: Scope, to: Scope): SpecOf<'delayProxy'> => ({
    kind: 'delayProxy',
    name: plan.name(from, 'photo-link'),
    listen: plan.at(from, 'web', 111, 8095),
    target: photoSyncAt(to),
    delayMs,
    carries: `photos to ${(to as { dataCenter: string }).dataCenter}`,
    purpose: 'photos',
  });
  const photos = (from: Scope, to: Scope): ProcessSpec[] => {
    const link = photoLink(from, to);
    return [
      link,
      {
        kind: 'photoSync',
        name: plan.name(from, 'photo-sync'),
        listen: photoSyncAt(from),
        peer: photoSyncAt(to),
        via: link.listen,
      },
    ];
  };
  const proxyA = databaseProxy(plan, a, { via: linksA.writes, check: crossPorts(plan, b).primaryCheck });
  const proxyB = databaseProxy(plan, b, { via: linksB.writes, check: crossPorts(plan, a).primaryCheck });

  const stack = (dc: Scope, proxy: SpecOf<'dbProxy'>, standbyOf?: SpecOf<'delayProxy'>): ProcessSpec[] => {
    const dataCenter = (dc as { dataCenter: string }).dataCenter;
    const nodes: ProcessSpec[] = [];
    for (let i = 1; i <= 1 + replicas; i++) {
      nodes.push({
        kind: 'patroni',
        name: plan.name(dc, `pg-${i}`),
        postgres: plan.at(dc, 'database', i, 5432),
        rest: plan.at(dc, 'database', i, 8008),
        ...(standbyOf ? { standbyOf: standbyOf.listen } : {}),
      });
    }
    return [
      {
        kind: 'etcd',
        name: plan.name(dc, 'etcd'),
        client: plan.at(dc, 'coordination', 1, 2379),
        peer: plan.at(dc, 'coordination', 1, 2380),
      },
      ...nodes,
      proxy,
      // Its own Redis (sessions and retried writes' keys are in PostgreSQL here: see appConfig), its web
      // server, and its worker, which runs the jobs of its own data center's queue.
      ...redisTiers(plan, dataCenter),
      webServerSpec(plan, dataCenter, 1),
      workerSpec(plan, dataCenter, 1),
      {
        kind: 'loadBalancer',
        name: plan.name(dc, 'load-balancer'),
        listen: plan.at(dc, 'balancer', 1, port),
        stats: plan.at(dc, 'web', 100, 8404),
        fromEdge: plan.at(dc, 'balancer', 1, port + 1000),
      },
      // The data center's CDN edge in front of its balancer: what the DNS gives its clients.
      {
        kind: 'varnish',
        name: plan.name(dc, 'edge'),
        listen: plan.at(dc, 'edge', 10, port + 1),
        admin: plan.at(dc, 'edge', 10, 6082),
        memory: '64m',
      },
      {
        kind: 'varnishExporter',
        name: plan.name(dc, 'edge-exporter'),
        listen: plan.at(dc, 'observability', 50, 9131),
        edge: plan.name(dc, 'edge'),
      },
    ];
  };

  const global: ProcessSpec[] = [
    { kind: 'hostExporter', name: 'host-exporter', listen: plan.at('global', 'observability', 5, 9100) },
    { kind: 'prometheus', name: 'prometheus', listen: plan.at('global', 'observability', 1, 9090) },
    { kind: 'dashboard', name: 'dashboard', listen: plan.at('global', 'observability', 2, 8090) },
    {
      kind: 'dnsHealth',
      name: 'dns-health',
      listen: plan.at('global', 'dns', 2, 8053),
      hostHeader: `${multiDcZone.site}.${multiDcZone.zone}`,
    },
    {
      kind: 'dns',
      name: 'dns',
      listen: plan.at('global', 'dns', 1, 53),
      ...multiDcZone,
      ttl: 5,
      clients: multiDcClients,
    },
  ];
  // The third voice: it fails the primary over when neither it nor the standby data center sees it.
  global.push({
    kind: 'witness',
    name: 'witness',
    listen: plan.at('global', 'control', 4, 8092),
    failoverAfterMs: 5000,
    automatic: true,
  });
  if (o.supervise ?? true) {
    global.push({ kind: 'supervisor', name: 'supervisor', listen: plan.at('global', 'control', 3, 8091) });
  }
  return topologySchema.parse({
    name,
    preset: 'multi-dc',
    octet: plan.octet,
    options: {
      // Asynchronous across data centers by default (Patroni runs no synchronous replication into a standby
      // cluster); inside dc-a, synchronous mode makes a commit wait for dc-a's replica only.
      synchronous: o.synchronous ?? false,
      patroniTtl: o.patroniTtl ?? 5,
      jobs: 'workers',
      maxRequestsPerServer: o.maxRequestsPerServer,
      queueTimeoutMs: o.queueTimeoutMs,
      queueDepthPerServer: o.queueDepthPerServer,
      webHeapMb: o.webHeapMb,
    },
    global: { processes: global },
    dataCenters: [
      { name: 'dc-a', processes: [linksA.replication, linksA.writes, ...stack(a, proxyA), ...photos(a, b)] },
      {
        name: 'dc-b',
        processes: [linksB.replication, linksB.writes, ...stack(b, proxyB, linksB.replication), ...photos(b, a)],
      },
    ],
  });
}
