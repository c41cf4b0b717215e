import type { LookupFunction } from 'node:net';
import { queryDns } from '../cluster/components/dns/query.ts';

/**
 * A client's stub resolver for the site's name: it asks the site's DNS
 * server with its network's client subnet (EDNS Client Subnet, as the
 * resolver of an ISP in that network would), keeps the answer for its TTL,
 * and keeps the last one while the server does not answer. Given to the load
 * generator's connection pool, so that every new connection goes where the
 * name points at that moment (a kept-alive one stays where it is, as a
 * browser's does). `onResolved` hears every address given to a connection, `onAsked`
 * every question asked of the server.
 */
/** One question the stub resolver asked the DNS server: its answer (or why none came), and how long it took. */
export interface ResolverAsk {
  at: number;
  ms: number;
  address?: string;
  ttl?: number;
  error?: string;
}

export function siteResolver(
  server: { host: string; port: number },
  subnet: string,
  o: { onResolved?: (address: string) => void; onAsked?: (ask: ResolverAsk) => void } = {},
) {
  let cached: { address: string; until: number } | undefined;
  let asking: Promise<string> | undefined;
  const ask = async (name: string): Promise<string> => {
    if (cached && Date.now() < cached.until) return cached.address;
    const at = Date.now();
    asking ??= queryDns(server, name, { subnet, timeoutMs: 1000 })
      .then((reply) => {
        const a = reply.answers.find((x) => x.type === 'A');
        if (!a) throw new Error(`${name}: no address (${reply.rcode})`);
        cached = { address: a.data, until: Date.now() + a.ttl * 1000 };
        o.onAsked?.({ at, ms: Date.now() - at, address: a.data, ttl: a.ttl });
        return a.data;
      })
      .catch((err: Error) => {
        o.onAsked?.({ at, ms: Date.now() - at, error: err.message });
        if (cached) return cached.address;
        throw err;
      })
      .finally(() => {
        asking = undefined;
      });
    return asking;
  };
  const lookup: LookupFunction = (hostname, options, callback) => {
    ask(hostname).then(
      (address) => {
        o.onResolved?.(address);
        // net.connect asks for every address (autoSelectFamily) or for one.
        if ((options as { all?: boolean }).all)
          (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family: 4 }]);
        else callback(null, address, 4);
      },
      (err: NodeJS.ErrnoException) => callback(Object.assign(err, { code: err.code ?? 'ENOTFOUND' }), '', 4),
    );
  };
  return { lookup };
}
