import { componentOf } from '../components/registry.ts';
import { type Address, type AddressPlan, addressPlan, octetFor, type Scope, type Tier } from './address.ts';
import { type ProcessKind, type ProcessSpec, type SpecOf, type Topology, topologySchema } from './schema.ts';

/** A topology from a file or a state file: one written before the address plan had its octet gets it from the name. */
export function parseTopology(value: unknown): Topology {
  const v = value as { octet?: unknown; name?: unknown };
  if (v && typeof v === 'object' && v.octet === undefined && typeof v.name === 'string') {
    return topologySchema.parse({ ...v, octet: octetFor(v.name) });
  }
  return topologySchema.parse(value);
}

/** Every process: each data center's, then the global ones. */
export function allProcesses(t: Topology): ProcessSpec[] {
  return [...t.dataCenters.flatMap((dc) => dc.processes), ...t.global.processes];
}

/** The processes of one scope: a data center's, or the global ones. */
export function processesIn(t: Topology, scope: Scope): ProcessSpec[] {
  if (scope === 'global') return t.global.processes;
  const dc = t.dataCenters.find((d) => d.name === scope.dataCenter);
  if (!dc) throw new Error(`no data center named ${scope.dataCenter}`);
  return dc.processes;
}

/** The processes of one kind, in one scope or everywhere. */
export function processesOf<K extends ProcessKind>(t: Topology, kind: K, scope?: Scope): SpecOf<K>[] {
  return (scope ? processesIn(t, scope) : allProcesses(t)).filter((p): p is SpecOf<K> => p.kind === kind);
}

/** The data center a process belongs to, or null for a global one. */
export function dataCenterOf(t: Topology, name: string): string | null {
  return t.dataCenters.find((dc) => dc.processes.some((p) => p.name === name))?.name ?? null;
}

/** The scope of a process. */
export const scopeOf = (t: Topology, name: string): Scope => {
  const dc = dataCenterOf(t, name);
  return dc ? { dataCenter: dc } : 'global';
};

/** The address plan of a topology. */
export const planOf = (t: Topology): AddressPlan =>
  addressPlan(
    t.octet,
    t.dataCenters.map((d) => d.name),
  );

/** The shard clusters of a sharded topology (pg-a, pg-b, …), from their proxies; none when it is not sharded. */
export const shardClustersOf = (t: Topology, dataCenter?: string): string[] =>
  processesOf(t, 'dbProxy', dataCenter ? { dataCenter } : undefined).flatMap((p) => (p.cluster ? [p.cluster] : []));

/** The first data center (every preset today has one). */
export const firstDataCenter = (t: Topology): string => (t.dataCenters[0] as { name: string }).name;

/** The web servers a data center (or the topology) has now: scaling and deploys change the list. */
export const webServers = (t: Topology, dataCenter?: string): SpecOf<'web'>[] =>
  processesOf(t, 'web', dataCenter ? { dataCenter } : undefined);

/** The workers a data center (or the topology) has now: scaling changes the list. */
export const workers = (t: Topology, dataCenter?: string): SpecOf<'worker'>[] =>
  processesOf(t, 'worker', dataCenter ? { dataCenter } : undefined);

/** A web server's slot: the last number of its name (web-3 → 3). */
export const webIndex = (w: { name: string }): number => Number(w.name.slice(w.name.lastIndexOf('-') + 1));

/** The load balancer of a data center (the first data center's by default), which it must have. */
export function balancerOf(t: Topology, dataCenter = firstDataCenter(t)): SpecOf<'loadBalancer'> {
  const [lb] = processesOf(t, 'loadBalancer', { dataCenter });
  if (!lb) throw new Error(`data center ${dataCenter} has no load balancer`);
  return lb;
}

export const webMetricsPort = 9464;

/** Where a web server (or a worker) serves /metrics. */
export const webMetrics = (spec: Pick<SpecOf<'web'>, 'listen' | 'metrics'>): Address =>
  spec.metrics ?? { host: spec.listen.host, port: webMetricsPort };

/** The order in which a data center's tiers face users: the first that has a public process is the site's URL. */
const facingUsers: Tier[] = ['dns', 'edge', 'balancer', 'web'];

/**
 * The URL users reach a data center by (the first one's: the site's): its most user-facing public process
 * (its edge, balancer or web server).
 */
export function publicUrl(t: Topology, dataCenter = firstDataCenter(t)): string {
  const candidates = processesIn(t, { dataCenter }).flatMap((p) => {
    const c = componentOf(p);
    return c.publicUrl ? [{ rank: facingUsers.indexOf(c.tier), url: c.publicUrl(p as never) }] : [];
  });
  const [first] = candidates.filter((x) => x.rank >= 0).sort((a, b) => a.rank - b.rank);
  if (!first) throw new Error('a topology needs a web server');
  return first.url;
}

/** Sentinel's name for the master of a Redis tier. */
export const redisMasterName = (tier: 'durable' | 'cache') => `scaleout-${tier}`;
