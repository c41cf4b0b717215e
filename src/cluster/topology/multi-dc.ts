import { type AddressPlan, addressPlan, octetFor, type Scope } from './address.ts';
import type { PresetOptions } from './presets.ts';
import { webServerSpec } from './presets.ts';
import { type ProcessSpec, type SpecOf, type Topology, topologySchema } from './schema.ts';

/** The data centers of `multi-dc`: the first holds the primary at start, the second a standby cluster. */
export const multiDcNames = ['dc-a', 'dc-b'] as const;

/** The client subnets the DNS maps to each data center (EDNS Client Subnet: data in a query, never an address we send to). */
export const multiDcClients: Record<string, string[]> = { 'dc-a': ['10.1.0.0/16'], 'dc-b': ['10.2.0.0/16'] };

/** The site's zone and name in `multi-dc`. */
export const multiDcZone = { zone: 'scaleout.test', site: 'www' };

/** The default distance between the two data centers, each way (ms). */
export const interDcDelayMs = 20;

/**
 * A data center's database proxy: the usual two ports (writes, reads), and
 * two that the other data center reaches: its own primary only
 * (`localPrimary`: what the other's standby streams from and its writes
 * cross to; never itself routed elsewhere, so two proxies cannot send a
 * connection round in a loop) and `primaryCheck`, which answers 200 while
 * this data center has a primary. `remotePrimary`: the other data center's
 * primary through a link, the write port's backup, taken when no node here
 * is primary (a standby data center's writes, or the old primary's after a
 * data-center failover).
 */
function databaseProxy(
  plan: AddressPlan,
  dc: Scope,
  remotePrimary?: { via: SpecOf<'delayProxy'>; check: SpecOf<'dbProxy'> },
): SpecOf<'dbProxy'> {
  return {
    kind: 'dbProxy',
    name: plan.name(dc, 'db-proxy'),
    primary: plan.at(dc, 'database', 100, 5000),
    replicas: plan.at(dc, 'database', 100, 5001),
    stats: plan.at(dc, 'database', 100, 7000),
    localPrimary: plan.at(dc, 'database', 100, 5002),
    primaryCheck: plan.at(dc, 'database', 100, 7001),
    ...(remotePrimary
      ? {
          remotePrimary: {
            via: remotePrimary.via.listen,
            check: remotePrimary.check.primaryCheck as SpecOf<'dbProxy'>['stats'],
          },
        }
      : {}),
  };
}

/**
 * `multi-dc` (step 1.7): two data centers behind the site's name. Each has
 * its etcd, a Patroni cluster of a primary and a replica (dc-b's a standby
 * cluster streaming from dc-a through a delayed link), its database proxy, a
 * web server and a balancer. Every connection from one data center to the
 * other goes through a delay proxy of the data center it leaves: dc-b's
 * replication and its writes (its proxy's write port falls back to dc-a's
 * primary through `dc-b-write-link`), and dc-a's writes should dc-b hold the
 * primary. The global scope holds the DNS (PowerDNS, the closest healthy data
 * center by client subnet), its health aggregator, Prometheus, the dashboard
 * and the supervisor. Sessions and idempotency keys are in PostgreSQL here,
 * so they cross with its replication.
 */
export function buildMultiDc(o: PresetOptions = {}): Topology {
  const name = o.name ?? 'multi-dc';
  const plan = addressPlan(o.octet ?? octetFor(name), multiDcNames);
  const [a, b] = multiDcNames.map((dataCenter) => ({ dataCenter })) as [Scope, Scope];
  const delayMs = o.interDcDelayMs ?? interDcDelayMs;
  const port = o.port ?? 8080;
  const replicas = o.replicas ?? 1;

  const link = (
    from: Scope,
    host: number,
    target: SpecOf<'dbProxy'>,
    base: string,
    carries: string,
  ): SpecOf<'delayProxy'> => ({
    kind: 'delayProxy',
    name: plan.name(from, base),
    listen: plan.at(from, 'database', host, 5000),
    target: target.localPrimary as SpecOf<'dbProxy'>['primary'],
    delayMs,
    carries,
  });
  // The proxies first without their backups (the links name the other's local port), then with them.
  const proxyA0 = databaseProxy(plan, a);
  const proxyB0 = databaseProxy(plan, b);
  const replication = link(b, 120, proxyA0, 'pg-link', 'replication from dc-a');
  const writesFromB = link(b, 121, proxyA0, 'write-link', 'dc-b’s writes to dc-a’s primary');
  const writesFromA = link(a, 121, proxyB0, 'write-link', 'dc-a’s writes to dc-b’s primary (after a failover)');
  const proxyA = databaseProxy(plan, a, { via: writesFromA, check: proxyB0 });
  const proxyB = databaseProxy(plan, b, { via: writesFromB, check: proxyA0 });

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
      webServerSpec(plan, dataCenter, 1),
      {
        kind: 'loadBalancer',
        name: plan.name(dc, 'load-balancer'),
        listen: plan.at(dc, 'balancer', 1, port),
        stats: plan.at(dc, 'web', 100, 8404),
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
      jobs: 'web',
      maxRequestsPerServer: o.maxRequestsPerServer,
      queueTimeoutMs: o.queueTimeoutMs,
      webHeapMb: o.webHeapMb,
    },
    global: { processes: global },
    dataCenters: [
      { name: 'dc-a', processes: [writesFromA, ...stack(a, proxyA)] },
      { name: 'dc-b', processes: [replication, writesFromB, ...stack(b, proxyB, replication)] },
    ],
  });
}
