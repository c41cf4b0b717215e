import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Cache } from '../../src/ports/cache.ts';
import { cached } from '../../src/ports/cache.ts';

export interface CacheContractOptions {
  name: string;
  /** A fresh, empty cache holding at most `maxEntries` entries with the given policy. */
  create(opts: { maxEntries: number; policy: 'lru' | 'lfu' | 'fifo' }): Promise<Cache>;
  /** Reasons to skip the checks that need an exact bound, where an adapter cannot give one. */
  skipEviction?: string;
}

/** What every Cache adapter must do: the in-process one now, Redis in the cache stage. */
export function runCacheContract(opts: CacheContractOptions): void {
  describe(`Cache contract: ${opts.name}`, () => {
    let cache: Cache;
    const prefix = `k${Math.random().toString(36).slice(2)}:`;
    const key = (k: string) => prefix + k;
    beforeEach(async () => {
      cache = await opts.create({ maxEntries: 3, policy: 'lru' });
    });
    afterEach(async () => {
      await cache.close();
    });

    it('returns what was set; neither the setter nor a reader can change what is cached', async () => {
      const value = { a: 1, list: [1, 2], nested: { s: 'x' } };
      await cache.set(key('a'), value);
      value.nested.s = 'changed by the setter';
      const got = await cache.get<typeof value>(key('a'));
      expect(got).toEqual({ a: 1, list: [1, 2], nested: { s: 'x' } });
      try {
        got!.nested.s = 'changed by a reader'; // a copy, or frozen (then this throws)
        got!.list.push(3);
      } catch (err) {
        expect(err).toBeInstanceOf(TypeError);
      }
      expect(await cache.get<typeof value>(key('a'))).toEqual({ a: 1, list: [1, 2], nested: { s: 'x' } });
    });

    it('misses unknown and deleted keys and counts hits and misses', async () => {
      expect(await cache.get(key('none'))).toBeUndefined();
      await cache.set(key('b'), 'v');
      await cache.get(key('b'));
      await cache.delete(key('b'), key('never-set'));
      expect(await cache.get(key('b'))).toBeUndefined();
      const stats = cache.stats();
      expect(stats.hits).toBeGreaterThanOrEqual(1);
      expect(stats.misses).toBeGreaterThanOrEqual(2);
    });

    it('expires entries after their TTL', async () => {
      await cache.set(key('ttl'), 1, 1);
      expect(await cache.get(key('ttl'))).toBe(1);
      await new Promise((r) => setTimeout(r, 1100));
      expect(await cache.get(key('ttl'))).toBeUndefined();
    });

    it('serialises dates as strings, as a network cache would', async () => {
      await cache.set(key('d'), { at: new Date('2026-01-02T03:04:05.000Z') });
      expect(await cache.get(key('d'))).toEqual({ at: '2026-01-02T03:04:05.000Z' });
    });

    it('cache-aside loads once and then hits', async () => {
      let loads = 0;
      const load = async () => {
        loads++;
        return { n: 42 };
      };
      expect(await cached(cache, key('aside'), load)).toEqual({ n: 42 });
      expect(await cached(cache, key('aside'), load)).toEqual({ n: 42 });
      expect(loads).toBe(1);
      expect(await cached(cache, key('absent'), async () => undefined)).toBeUndefined();
    });

    it('cache-aside: concurrent misses share one load (stampede protection)', async () => {
      let loads = 0;
      const load = async () => {
        loads++;
        await new Promise((r) => setTimeout(r, 30));
        return { n: loads };
      };
      const all = await Promise.all(Array.from({ length: 10 }, () => cached(cache, key('stampede'), load)));
      expect(loads).toBe(1);
      expect(all).toEqual(Array(10).fill({ n: 1 }));
    });

    it('cache-aside: remembers "not found" for a short while, until the key is deleted', async () => {
      let loads = 0;
      const load = async (): Promise<{ n: number } | undefined> => {
        loads++;
        return loads > 2 ? { n: loads } : undefined;
      };
      expect(await cached(cache, key('negative'), load)).toBeUndefined();
      expect(await cached(cache, key('negative'), load)).toBeUndefined();
      expect(loads).toBe(1);
      await cache.delete(key('negative')); // whoever creates the thing deletes the key
      expect(await cached(cache, key('negative'), load)).toBeUndefined();
      expect(loads).toBe(2);
      await cache.delete(key('negative'));
      expect(await cached(cache, key('negative'), load)).toEqual({ n: 3 });
    });

    it('cache-aside with grace: past its TTL a value is loaded again, and served while the load fails', async () => {
      let row = 'v1';
      let failing = false;
      const load = async () => {
        if (failing) throw new Error('database down');
        return row;
      };
      expect(await cached(cache, key('grace'), load, 1)).toBe('v1');
      row = 'v2';
      expect(await cached(cache, key('grace'), load, 1)).toBe('v1'); // fresh
      await new Promise((r) => setTimeout(r, 1200));
      expect(await cached(cache, key('grace'), load, 1)).toBe('v2'); // past the TTL: loaded again
      await new Promise((r) => setTimeout(r, 1200));
      failing = true;
      expect(await cached(cache, key('grace'), load, 1)).toBe('v2'); // the load fails: the old value
      await expect(cached(cache, key('never-cached'), load, 1)).rejects.toThrow('database down');
    });

    it('a fill with a lease stores nothing when the key was deleted after the lease was taken', async () => {
      const lease = await cache.lease(key('lease'));
      await cache.delete(key('lease'));
      await cache.set(key('lease'), 'old', 60, lease);
      expect(await cache.get(key('lease'))).toBeUndefined();
      const fresh = await cache.lease(key('lease'));
      await cache.set(key('lease'), 'new', 60, fresh);
      expect(await cache.get(key('lease'))).toBe('new');
    });

    it('cache-aside: a slow load that read a value before a write and its delete does not store it', async () => {
      let row = 'v1';
      let readRow!: () => void;
      const loadStarted = new Promise<void>((r) => {
        readRow = r;
      });
      const slow = cached(cache, key('race'), async () => {
        const seen = row; // read from the database …
        readRow();
        await new Promise((r) => setTimeout(r, 200)); // … then held up (a slow query, a GC pause)
        return seen;
      });
      await loadStarted;
      row = 'v2'; // a writer commits
      await cache.delete(key('race')); // and deletes the key
      expect(await slow).toBe('v1'); // the slow reader gets what it read …
      expect(await cache.get(key('race'))).toBeUndefined(); // … but it did not survive in the cache
      expect(await cached(cache, key('race'), async () => row)).toBe('v2');
    });

    describe.skipIf(Boolean(opts.skipEviction))(`bounded size ${opts.skipEviction ?? ''}`, () => {
      const fill = async (c: Cache) => {
        for (const k of ['1', '2', '3']) await c.set(key(k), k);
      };
      const present = async (c: Cache) => {
        const out: string[] = [];
        for (const k of ['1', '2', '3', '4']) if ((await c.get(key(k))) !== undefined) out.push(k);
        return out;
      };

      it('LRU evicts the least recently used', async () => {
        const c = await opts.create({ maxEntries: 3, policy: 'lru' });
        await fill(c);
        await c.get(key('1'));
        await c.set(key('4'), '4');
        expect(await present(c)).toEqual(['1', '3', '4']);
        await c.close();
      });

      it('FIFO evicts the oldest insert, reads or not', async () => {
        const c = await opts.create({ maxEntries: 3, policy: 'fifo' });
        await fill(c);
        await c.get(key('1'));
        await c.set(key('4'), '4');
        expect(await present(c)).toEqual(['2', '3', '4']);
        await c.close();
      });

      it('LFU evicts the least frequently used', async () => {
        const c = await opts.create({ maxEntries: 3, policy: 'lfu' });
        await fill(c);
        await c.get(key('1'));
        await c.get(key('1'));
        await c.get(key('2'));
        await c.set(key('4'), '4');
        expect(await present(c)).toEqual(['1', '2', '4']);
        expect(c.stats().size).toBe(3);
        await c.close();
      });
    });
  });
}
