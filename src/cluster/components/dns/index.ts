import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { requireBinaries, type StartedProcess, startProcess, waitUntil } from '../../process.ts';
import { address } from '../../topology/address.ts';
import type { Topology } from '../../topology/schema.ts';
import { processesIn, processesOf } from '../../topology/select.ts';
import { defineComponent, hostPort } from '../component.ts';
import { queryDns } from './query.ts';
import { pdnsConfig, renderZone, type ZoneDataCenter } from './zone.ts';

/**
 * The site's name server (step 1.1 and 1.7): PowerDNS Authoritative with
 * the site's zone, `www.<zone>` answering the closest healthy data center's
 * edge (see zone.ts). `clients`: each data center's client subnets.
 */
export const dnsSpec = z.object({
  kind: z.literal('dns'),
  name: z.string(),
  listen: address,
  zone: z
    .string()
    .regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/)
    .default('scaleout.test'),
  site: z
    .string()
    .regex(/^[a-z0-9-]+$/)
    .default('www'),
  ttl: z.number().int().min(1).max(3600).default(5),
  clients: z.record(z.string(), z.array(z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/))),
});
type Dns = z.infer<typeof dnsSpec>;

/** Each data center's public process (its edge, else its balancer), where its users arrive. */
export function edgesOf(t: Topology, clients: Dns['clients']): ZoneDataCenter[] {
  return t.dataCenters.map((dc) => {
    const processes = processesIn(t, { dataCenter: dc.name });
    const edge = processes.find((p) => p.kind === 'varnish') ?? processes.find((p) => p.kind === 'loadBalancer');
    if (!edge || (edge.kind !== 'varnish' && edge.kind !== 'loadBalancer')) {
      throw new Error(`data center ${dc.name} has no edge or balancer for the DNS to answer`);
    }
    return { name: dc.name, clients: clients[dc.name] ?? [], edge: edge.listen };
  });
}

/** Writes the zone and PowerDNS' config into `dir` and starts pdns_server; resolves once it answers for the zone. */
export async function startPowerDns(
  spec: Pick<Dns, 'name' | 'listen' | 'zone' | 'site' | 'ttl'>,
  dataCenters: ZoneDataCenter[],
  dir: string,
  log: string,
  aggregator?: { host: string; port: number },
): Promise<StartedProcess> {
  requireBinaries(['/usr/sbin/pdns_server'], 'pdns-server and pdns-backend-bind');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = pdnsConfig({ dir, listen: spec.listen, zone: spec.zone });
  writeFileSync(path.join(dir, 'pdns.conf'), files['pdns.conf']);
  writeFileSync(path.join(dir, 'named.conf'), files['named.conf']);
  writeFileSync(
    path.join(dir, `${spec.zone}.zone`),
    renderZone({
      zone: spec.zone,
      site: spec.site,
      ttl: spec.ttl,
      nameServer: spec.listen.host,
      dataCenters,
      healthPath: '/readyz',
      aggregator,
    }),
  );
  const proc = startProcess({ command: '/usr/sbin/pdns_server', args: [`--config-dir=${dir}`], log, cwd: dir });
  await waitUntil(
    async () =>
      (await queryDns(spec.listen, spec.zone, { type: 'SOA', timeoutMs: 300 }).catch(() => null))?.rcode === 'NOERROR',
    15_000,
    `${spec.name} answering for ${spec.zone}`,
  );
  return proc;
}

export const dns = defineComponent<Dns>({
  kind: 'dns',
  spec: dnsSpec,
  tier: 'dns',
  scope: 'global',
  // After every edge, whose health it checks.
  stage: 98,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'public' }],
  address: (s) => `${hostPort(s.listen)} (${s.site}.${s.zone})`,
  start: (s, ctx) =>
    startPowerDns(
      s,
      edgesOf(ctx.topology, s.clients),
      path.join(ctx.runDir, s.name),
      path.join(ctx.runDir, 'logs', `${s.name}.log`),
      processesOf(ctx.topology, 'dnsHealth')[0]?.listen,
    ),
  health: async (s) => {
    const reply = await queryDns(s.listen, `${s.site}.${s.zone}`, { timeoutMs: 1000 }).catch(() => null);
    return {
      ok: reply?.rcode === 'NOERROR',
      role: 'DNS (PowerDNS, geo)',
      detail: reply ? `${s.site}.${s.zone} → ${reply.answers.map((a) => a.data).join(', ') || 'nothing'}` : undefined,
    };
  },
});
