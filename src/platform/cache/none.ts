import type { Cache } from '../../ports/cache.ts';

/**
 * A cache that keeps nothing: for data a user must see their own writes of
 * ("liked by me") on web servers that cannot tell each other about deletes
 * (several processes without Redis), where a per-process copy would be read
 * stale through another server.
 */
export function createNoCache(): Cache {
  let misses = 0;
  return {
    async get() {
      misses++;
      return undefined;
    },
    async set() {},
    async delete() {},
    lease: async (key) => ({ key, local: 0, takenAt: Date.now() }),
    stats: () => ({ hits: 0, misses, size: 0 }),
    onLookup() {},
    async close() {},
  };
}
