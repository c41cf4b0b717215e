import { webServerSpec } from '../topology/presets.ts';
import { maxWebServers, type Topology } from '../topology/schema.ts';
import { allProcesses, planOf } from '../topology/select.ts';
import { componentOf } from './registry.ts';

/**
 * Every address a process of the topology binds, or may bind once the web
 * tier scales (each data center's web-server slots): what its servers accept
 * connections from, and nothing else.
 */
export function topologyHosts(t: Topology): string[] {
  const hosts = allProcesses(t).flatMap((p) =>
    componentOf(p)
      .addresses(p)
      .map((a) => a.host),
  );
  for (const dc of t.dataCenters) {
    for (let i = 1; i <= maxWebServers; i++) hosts.push(webServerSpec(planOf(t), dc.name, i).listen.host);
  }
  return [...new Set(hosts)];
}

/**
 * pg_hba's host lines: password (SCRAM) only, and only from the topology's
 * own addresses. A connection on loopback that binds no address comes from
 * 127.0.0.1 (the kernel's source for 127.0.0.0/8), so that one is there too.
 * The unix socket (trust) is in a 0700 directory of the postgres user.
 */
export function hbaSources(t: Topology): string[] {
  return clientHosts(t).map((h) => `${h}/32`);
}

/** The addresses a connection from the topology comes from: its own, and 127.0.0.1 (a client that binds none). */
export const clientHosts = (t: Topology): string[] => [...new Set(['127.0.0.1', ...topologyHosts(t)])];
