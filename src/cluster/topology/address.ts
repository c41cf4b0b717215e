import { z } from 'zod';

/** Where a process listens: its own loopback address and a port. */
export const address = z.object({
  host: z.string().regex(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/),
  port: z.number().int().min(1).max(65535),
});
export type Address = z.infer<typeof address>;

/**
 * The tiers of the chapter, as components declare them; each has its own
 * block of addresses in every scope. `control` is the supervisor.
 */
export const tiers = [
  'dns',
  'edge',
  'balancer',
  'web',
  'worker',
  'cache',
  'database',
  'coordination',
  'observability',
  'control',
] as const;
export type Tier = (typeof tiers)[number];

/** A topology's processes are global (DNS, Prometheus, the dashboard, the supervisor) or belong to one data center. */
export type Scope = { dataCenter: string } | 'global';

/**
 * The address plan, the only code that knows the 127.x.y.z layout:
 * 127.<octet>.<block>.<host>, where <octet> is the topology's own (two
 * topologies with different octets never meet) and <block> is a tier of one
 * scope: data center d (0, 1, …) has the blocks 16·d + 0…15, the global scope
 * 224…239. Inside a block, the component chooses the host numbers.
 *
 * The first data center keeps the blocks the presets always had: 0 public
 * edge and balancer, 1 web servers, 2 database, 3 coordination, 4
 * observability, 5 Redis.
 */
const blockOf: Record<Tier, number> = {
  dns: 8,
  edge: 0,
  balancer: 0,
  web: 1,
  worker: 6,
  cache: 5,
  database: 2,
  coordination: 3,
  observability: 4,
  control: 4,
};
export const maxDataCenters = 14;

export interface AddressPlan {
  octet: number;
  dataCenters: readonly string[];
  /**
   * The name of a process of `scope`: `base` in the global scope and in a
   * topology of one data center (every single-site preset), else prefixed
   * with its data center (`dc-b-web-1`), so that names stay unique.
   */
  name(scope: Scope, base: string): string;
  /** The address of host `n` (1–254) of `tier` in `scope`. */
  ip(scope: Scope, tier: Tier, n: number): string;
  at(scope: Scope, tier: Tier, n: number, port: number): Address;
}

export function addressPlan(octet: number, dataCenters: readonly string[]): AddressPlan {
  if (!Number.isInteger(octet) || octet < 1 || octet > 254) throw new Error(`octet ${octet}: 1 to 254`);
  if (dataCenters.length > maxDataCenters) throw new Error(`at most ${maxDataCenters} data centers`);
  const block = (scope: Scope, tier: Tier) => {
    if (scope === 'global') return 224 + blockOf[tier];
    const d = dataCenters.indexOf(scope.dataCenter);
    if (d < 0) throw new Error(`no data center named ${scope.dataCenter}`);
    return 16 * d + blockOf[tier];
  };
  const ip = (scope: Scope, tier: Tier, n: number) => {
    if (!Number.isInteger(n) || n < 1 || n > 254) throw new Error(`host ${n}: 1 to 254`);
    return `127.${octet}.${block(scope, tier)}.${n}`;
  };
  return {
    octet,
    dataCenters,
    ip,
    at: (scope, tier, n, port) => ({ host: ip(scope, tier, n), port }),
    name: (scope, base) => (scope === 'global' || dataCenters.length < 2 ? base : `${scope.dataCenter}-${base}`),
  };
}

/** 20–219, from the name, so that differently named topologies usually get different addresses. */
export function octetFor(name: string): number {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return 20 + (h % 200);
}

/** `host:port` as an Address; throws, naming it, on anything else. */
export function parseHostPort(s: string): Address {
  const i = s.lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (i < 1 || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`not host:port: ${s}`);
  return { host: s.slice(0, i), port };
}
