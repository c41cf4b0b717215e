import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { httpStatus, waitUntil } from '../../process.ts';
import { address } from '../../topology/address.ts';
import { webServerSpec } from '../../topology/presets.ts';
import { maxWebServers, type SpecOf, type Topology } from '../../topology/schema.ts';
import { dataCenterOf, firstDataCenter, planOf, webServers } from '../../topology/select.ts';
import { defineComponent, hostPort } from '../component.ts';
import { loadBalancerConfig, startHaproxy } from './haproxy.ts';

export const loadBalancerSpec = z.object({
  kind: z.literal('loadBalancer'),
  name: z.string(),
  /** The one public endpoint of its data center. */
  listen: address,
  /** Stats page and Prometheus exporter, private (the runtime API is a unix socket). */
  stats: address,
  /**
   * With a CDN edge in front: the port the edge connects to, speaking the PROXY
   * protocol, so the balancer knows each request's real client (not the edge's address).
   */
  fromEdge: address.optional(),
});
type LoadBalancer = z.infer<typeof loadBalancerSpec>;

/** The balancer's config for the web servers its data center has now, with a slot for each one it may have. */
export function balancerConfig(t: Topology, lb: LoadBalancer, runDir: string): string {
  const dc = dataCenterOf(t, lb.name) ?? firstDataCenter(t);
  const slots: SpecOf<'web'>[] = Array.from({ length: maxWebServers }, (_, i) => webServerSpec(planOf(t), dc, i + 1));
  return loadBalancerConfig(lb, webServers(t, dc), slots, {
    runDir,
    maxConnectionsPerClient: t.options.maxConnectionsPerClient,
    maxRequestsPerServer: t.options.maxRequestsPerServer,
    queueTimeoutMs: t.options.queueTimeoutMs,
    queueDepthPerServer: t.options.queueDepthPerServer,
  });
}

/** Rewrites the balancer's config file, so that a restarted balancer has the servers the tier has now. */
export function writeBalancerConfig(t: Topology, lb: LoadBalancer, runDir: string): void {
  writeFileSync(path.join(runDir, `${lb.name}.cfg`), balancerConfig(t, lb, runDir), { mode: 0o600 });
}

/** HAProxy in front of a data center's web servers: the public endpoint (health checks, retries, runtime API). */
export const loadBalancer = defineComponent<LoadBalancer>({
  kind: 'loadBalancer',
  spec: loadBalancerSpec,
  tier: 'balancer',
  scope: 'dataCenter',
  // Last of its data center: it opens the site once every web server is ready.
  stage: 90,
  publicUrl: (s) => `http://${hostPort(s.listen)}`,
  addresses: (s) => [s.listen, s.stats, ...(s.fromEdge ? [s.fromEdge] : [])],
  access: (s) => [
    { at: s.listen, guard: 'public' },
    { at: s.stats, guard: 'read-only' },
    ...(s.fromEdge ? [{ at: s.fromEdge, guard: 'peers' as const }] : []),
  ],
  address: (s) => hostPort(s.listen),
  async start(s, ctx) {
    const started = await startHaproxy(s.name, balancerConfig(ctx.topology, s, ctx.runDir), ctx.runDir, s.listen);
    if (!ctx.restarting) {
      const url = `http://${hostPort(s.listen)}`;
      ctx.log(`  the site: ${url}`);
      await waitUntil(async () => (await httpStatus(`${url}/readyz`)) === 200, 30_000, 'the site through the balancer');
    }
    return started;
  },
  health: async (s) => ({
    ok: (await httpStatus(`http://${hostPort(s.listen)}/healthz`)) === 200,
    role: 'load balancer (public)',
  }),
  scrape: (s) => ({ job: 'haproxy', target: hostPort(s.stats) }),
  // Only the balancer may say who the client is: it connects from its own address (its `source`).
  provides: ([s]) => (s ? { trustProxy: s.listen.host } : {}),
});
