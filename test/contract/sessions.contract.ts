import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionStore } from '../../src/ports/sessions.ts';

export interface SessionContractOptions {
  name: string;
  /** A store whose sessions live `ttlSeconds`; `userId` must be a user that exists. */
  create(ttlSeconds: number): Promise<{ store: SessionStore; userId: string; cleanup(): Promise<void> }>;
  /**
   * Backing storage that can be closed and opened again, to check that
   * sessions survive a restart. Omitted for stores that live in memory.
   */
  restartable?(): Promise<{
    userId: string;
    open(): Promise<{ store: SessionStore; close(): Promise<void> }>;
    cleanup(): Promise<void>;
  }>;
}

/** What every SessionStore must do: memory and database now, Redis in the stateless stage. */
export function runSessionContract(opts: SessionContractOptions): void {
  describe(`SessionStore contract: ${opts.name}`, () => {
    let store: SessionStore;
    let userId: string;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ store, userId, cleanup } = await opts.create(2));
    });
    afterAll(async () => {
      await cleanup();
    });

    it('creates unguessable ids and returns the session by id', async () => {
      const a = await store.create(userId, { username: 'someone' });
      const b = await store.create(userId);
      expect(a.id).not.toBe(b.id);
      expect(a.id.length).toBeGreaterThanOrEqual(32);
      const got = await store.get(a.id);
      expect(got?.userId).toBe(userId);
      expect(got?.data).toEqual({ username: 'someone' });
      expect(got!.expiresAt.getTime()).toBeGreaterThan(Date.now());
    });

    it('returns null for unknown and deleted sessions', async () => {
      expect(await store.get('no-such-session-id-000000000000000000')).toBeNull();
      const s = await store.create(userId);
      await store.delete(s.id);
      expect(await store.get(s.id)).toBeNull();
      await store.delete(s.id);
    });

    it('updates session data', async () => {
      const s = await store.create(userId, { a: '1' });
      await store.update(s.id, { a: '2', b: '3' });
      expect((await store.get(s.id))?.data).toEqual({ a: '2', b: '3' });
    });

    it('never returns an expired session', async () => {
      const s = await store.create(userId);
      await new Promise((r) => setTimeout(r, 2100));
      expect(await store.get(s.id)).toBeNull();
    });

    it.skipIf(!opts.restartable)('keeps sessions across a restart', async () => {
      const storage = await opts.restartable!();
      const first = await storage.open();
      const s = await first.store.create(storage.userId, { username: 'kept' });
      await first.close();
      const second = await storage.open();
      expect((await second.store.get(s.id))?.data).toEqual({ username: 'kept' });
      await second.close();
      await storage.cleanup();
    });
  });
}
