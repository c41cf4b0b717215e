import { describe, expect, it } from 'vitest';
import { createMemoryCache } from '../../src/platform/cache/memory.ts';
import { runCacheContract } from './cache.contract.ts';

runCacheContract({
  name: 'in-process',
  create: async ({ maxEntries, policy }) => createMemoryCache({ maxEntries, policy, defaultTtlSeconds: 60 }),
});

describe('in-process cache bounded by size', () => {
  const value = (n: number) => ({ text: 'x'.repeat(n) });

  it('evicts the least recently used entries once their JSON passes maxBytes, whatever their count', async () => {
    const cache = createMemoryCache({ maxEntries: 1000, maxBytes: 1000, policy: 'lru', defaultTtlSeconds: 60 });
    for (let i = 0; i < 5; i++) await cache.set(`k${i}`, value(200));
    // Five of ≈ 215 bytes each pass 1,000: the oldest went.
    expect(cache.stats().size).toBe(4);
    expect(await cache.get('k0')).toBeUndefined();
    expect(await cache.get('k4')).toEqual(value(200));
    expect(cache.stats().bytes).toBeLessThanOrEqual(1000);
  });

  it('counts a replaced value once, and a deleted one not at all', async () => {
    const cache = createMemoryCache({ maxEntries: 1000, maxBytes: 10_000, policy: 'lru', defaultTtlSeconds: 60 });
    await cache.set('a', value(100));
    const one = cache.stats().bytes ?? 0;
    await cache.set('a', value(100));
    expect(cache.stats().bytes).toBe(one);
    await cache.delete('a');
    expect(cache.stats().bytes).toBe(0);
  });

  it('keeps no value bigger than the whole bound, and drops what the key held before', async () => {
    const cache = createMemoryCache({ maxEntries: 1000, maxBytes: 500, policy: 'lru', defaultTtlSeconds: 60 });
    await cache.set('small', value(10));
    await cache.set('big', value(100));
    await cache.set('big', value(1000));
    expect(await cache.get('big')).toBeUndefined();
    expect(await cache.get('small')).toEqual(value(10));
  });
});
