import type { Cache, ClearableCache } from '../../ports/cache.ts';
import type { InvalidationChannel } from '../../ports/invalidations.ts';

/**
 * A cache whose deletes reach every process of the site through `channel`:
 * a delete here drops the keys, then publishes them and waits until the
 * channel has handed them on; a delete published elsewhere drops them here
 * (and counts for this process's fill leases, so a fill racing it stores
 * nothing). When the channel may have missed messages, everything goes.
 * `local` is a process's own cache (web servers without Redis), or a data
 * center's two-level cache on its cache Redis (several data centers: the
 * channel, PostgreSQL's NOTIFY on the primary, is what crosses between them).
 */
export function withSharedInvalidation(local: ClearableCache, channel: InvalidationChannel): Cache {
  channel.subscribe({
    keys: (keys) => local.delete(...keys),
    gap: () => void local.clear(),
  });
  return {
    get: (key) => local.get(key),
    set: (key, value, ttl, lease) => local.set(key, value, ttl, lease),
    async delete(...keys) {
      if (keys.length === 0) return;
      await local.delete(...keys);
      await channel.publish(keys);
    },
    lease: (key) => local.lease(key),
    stats: () => local.stats(),
    onLookup: (listener) => local.onLookup(listener),
    close: () => local.close(),
  };
}
