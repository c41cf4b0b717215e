import { createMemoryCache } from '../../src/platform/cache/memory.ts';
import { runCacheContract } from './cache.contract.ts';

runCacheContract({
  name: 'in-process',
  create: async ({ maxEntries, policy }) => createMemoryCache({ maxEntries, policy, defaultTtlSeconds: 60 }),
});
