import { describe, expect, it } from 'vitest';
import { newId } from '../../src/app/ids.ts';
import { createPhotoRepository } from '../../src/app/photos/repository.ts';
import { photoCacheKey, photoViews } from '../../src/app/photos/views.ts';
import { createUserRepository } from '../../src/app/users/repository.ts';
import { createUserService, profileCacheKey } from '../../src/app/users/service.ts';
import { createMemoryCache } from '../../src/platform/cache/memory.ts';
import { openPgliteDb } from '../../src/platform/db/pglite.ts';
import { cached, notStored } from '../../src/ports/cache.ts';
import { type Db, preferPrimary, primaryPatienceMs, StoreUnavailableError } from '../../src/ports/db.ts';
import { shardOfUsername } from '../../src/ports/shards.ts';
import { withLostPrimary } from '../support/lost-primary.ts';

const newCache = () => createMemoryCache({ maxEntries: 1000, policy: 'lru', defaultTtlSeconds: 60 });
const resolveAfter = <T>(ms: number, value: T) => new Promise<T>((r) => setTimeout(() => r(value), ms));
const never = () => new Promise<never>(() => {});
const timed = async <T>(p: Promise<T>) => {
  const asked = performance.now();
  const value = await p;
  return { value, ms: performance.now() - asked };
};

describe('preferPrimary: a read that prefers the primary', () => {
  it("the primary's answer when it comes in time; the replica is not asked", async () => {
    let asked = 0;
    const r = await preferPrimary(
      () => resolveAfter(5, 'p'),
      async () => {
        asked++;
        return 'r';
      },
      { afterMs: 100 },
    );
    expect(r).toEqual({ value: 'p', from: 'primary' });
    expect(asked).toBe(0);
  });

  it("a primary unavailable: the replica's answer at once", async () => {
    const { value, ms } = await timed(
      preferPrimary(
        () => Promise.reject(new StoreUnavailableError('no primary')),
        async () => 'r',
        { afterMs: 1000 },
      ),
    );
    expect(value).toEqual({ value: 'r', from: 'replica' });
    expect(ms).toBeLessThan(500);
  });

  it('any other error of the primary is thrown, not hidden behind a replica', async () => {
    await expect(
      preferPrimary(
        () => Promise.reject(new Error('syntax error')),
        async () => 'r',
      ),
    ).rejects.toThrow('syntax error');
  });

  it("a late primary: the replica's usable answer after the patience; an unusable one waits for the primary", async () => {
    const late = await timed(preferPrimary(never, async () => 'r', { afterMs: 100 }));
    expect(late.value).toEqual({ value: 'r', from: 'replica' });
    expect(late.ms).toBeGreaterThanOrEqual(95);
    const waited = await timed(
      preferPrimary(
        () => resolveAfter(300, 'p'),
        async () => undefined,
        { afterMs: 100, usable: (v) => v !== undefined },
      ),
    );
    expect(waited.value).toEqual({ value: 'p', from: 'primary' });
    expect(waited.ms).toBeGreaterThanOrEqual(295);
  });
});

describe('cached: a notStored value', () => {
  it('is returned and not kept: the next read loads again', async () => {
    const cache = newCache();
    let loads = 0;
    const load = async () => {
      loads++;
      return notStored({ n: loads });
    };
    expect(await cached(cache, 'k', load)).toEqual({ n: 1 });
    expect(await cache.get('k')).toBeUndefined();
    expect(await cached(cache, 'k', load)).toEqual({ n: 2 });
    expect(await cached(cache, 'k', async () => ({ n: 3 }))).toEqual({ n: 3 });
    expect(await cache.get('k')).toEqual({ n: 3 });
  });
});

describe('reads filled from the primary, while the primary does not answer', () => {
  const seed = async () => {
    const db = await openPgliteDb(undefined);
    const username = `late${Date.now() % 1_000_000}`;
    const id = newId(shardOfUsername(username));
    await createUserRepository(db).create({ id, username, passwordHash: 'x' });
    const photoId = newId(shardOfUsername(username));
    await createPhotoRepository(db).createWithinCap(
      {
        id: photoId,
        ownerId: id,
        caption: 'seen during the loss',
        mimeType: 'image/png',
        width: 1,
        height: 1,
        byteSize: 1,
        createdAt: new Date(),
      },
      10,
    );
    return { db, username, photoId };
  };
  const usersOf = (db: Db, cache = newCache()) =>
    createUserService({
      users: createUserRepository(db),
      cache,
      sessions: undefined as never,
      metrics: undefined as never,
      throttle: undefined as never,
    });

  it("a profile: the replica's answer after the primary's patience, and the cache keeps none of it", async () => {
    const { db, username } = await seed();
    try {
      const cache = newCache();
      const { value, ms } = await timed(usersOf(withLostPrimary(db), cache).profile(username));
      expect(value).toMatchObject({ username, followerCount: 0 });
      expect(ms).toBeGreaterThanOrEqual(primaryPatienceMs - 5);
      expect(ms).toBeLessThan(primaryPatienceMs + 2000);
      expect(await cache.get(profileCacheKey(username))).toBeUndefined();
      // The primary back: its answer is kept.
      await usersOf(db, cache).profile(username);
      expect(await cache.get(profileCacheKey(username))).toMatchObject({ username });
    } finally {
      await db.close();
    }
  });

  it('a user the replica does not have yet waits for the primary (no "not found" from a lagging replica)', async () => {
    const { db } = await seed();
    try {
      const pending = await Promise.race([
        usersOf(withLostPrimary(db))
          .profile('made-in-the-lag')
          .then(
            () => 'answered',
            () => 'failed',
          ),
        resolveAfter(primaryPatienceMs + 400, 'still waiting'),
      ]);
      expect(pending).toBe('still waiting');
    } finally {
      await db.close();
    }
  });

  it("a photo's view: the replica's row, not kept; the primary's is", async () => {
    const { db, photoId } = await seed();
    try {
      const cache = newCache();
      const { value, ms } = await timed(photoViews(cache, createPhotoRepository(withLostPrimary(db)), [photoId]));
      expect(value.get(photoId)).toMatchObject({ id: photoId, caption: 'seen during the loss' });
      expect(ms).toBeGreaterThanOrEqual(primaryPatienceMs - 5);
      expect(await cache.get(photoCacheKey(photoId))).toBeUndefined();
      await createPhotoRepository(db).markReady(photoId, {});
      await photoViews(cache, createPhotoRepository(db), [photoId]);
      expect(await cache.get(photoCacheKey(photoId))).toBeDefined();
    } finally {
      await db.close();
    }
  });
});
