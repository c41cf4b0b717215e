import type { Logger } from 'pino';
import type { Edge } from '../../ports/edge.ts';

export interface VarnishEdgeOptions {
  /** Every edge's base URL; the first is this server's data center's (image URLs point there). */
  edges: string[];
  /** The origin's base (the balancer): image URLs while the edge is down, and the browser's fallback. */
  origin: string;
  /** The topology's purge token (X-Purge-Token). */
  purgeToken: string;
  logger: Logger;
  /** How often the edge's health is probed (ms). */
  probeEveryMs?: number;
}

/**
 * The Varnish edges: a background probe of the local edge (`/.edge/health`,
 * every second, two failures in a row to call it down, one success to call it
 * up) decides where image URLs point; a purge is an xkey PURGE to every edge
 * (the photo service sends it again a second later, as a job, since a fill
 * that left the origin before the delete can land in the cache after the
 * first purge).
 */
export function createVarnishEdge(o: VarnishEdgeOptions): Edge {
  const [local] = o.edges;
  let healthy = true;
  let failures = 0;
  const probe = async () => {
    try {
      const res = await fetch(`${local}/.edge/health`, { signal: AbortSignal.timeout(500) });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      if (!healthy) o.logger.info({ edge: local }, 'the edge answers again: image URLs point to it');
      healthy = true;
      failures = 0;
    } catch (err) {
      failures++;
      if (healthy && failures >= 2) {
        healthy = false;
        o.logger.warn({ edge: local, err }, 'the edge does not answer: image URLs point to the origin');
      }
    }
  };
  const timer = setInterval(() => void probe(), o.probeEveryMs ?? 1000);
  timer.unref();
  void probe();

  const purgeAll = async (tag: string) => {
    await Promise.all(
      o.edges.map(async (edge) => {
        try {
          const res = await fetch(`${edge}/`, {
            method: 'PURGE',
            headers: { 'xkey-purge': tag, 'x-purge-token': o.purgeToken },
            signal: AbortSignal.timeout(2000),
          });
          await res.arrayBuffer();
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
        } catch (err) {
          // An edge that is down holds nothing new; one that comes back is purged again below.
          o.logger.warn({ edge, tag, err }, 'edge purge failed');
        }
      }),
    );
  };

  return {
    enabled: true,
    mediaBase: () => (healthy ? local : o.origin),
    mediaHosts: () => [...o.edges, o.origin],
    origin: () => o.origin,
    purge: purgeAll,
    async close() {
      clearInterval(timer);
    },
  };
}
