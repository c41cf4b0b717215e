import type { Cache } from '../../ports/cache.ts';
import type { InvalidationChannel } from '../../ports/invalidations.ts';
import type { MemoryCache } from './memory.ts';

/**
 * An in-process cache whose deletes reach every process of the site through
 * `channel`: a delete here drops the keys, then publishes them and waits
 * until the channel has handed them on; a delete published elsewhere drops
 * them here (and counts for this process's fill leases, so a fill racing it
 * stores nothing). When the channel may have missed messages, everything goes.
 */
export function withSharedInvalidation(local: MemoryCache, channel: InvalidationChannel): Cache {
  channel.subscribe({
    keys: (keys) => void local.delete(...keys),
    gap: () => local.clear(),
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
