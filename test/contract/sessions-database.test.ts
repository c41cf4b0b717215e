import { describe, expect, it } from 'vitest';
import { openPgliteDb } from '../../src/platform/db/pglite.ts';
import { createDatabaseSessionStore } from '../../src/platform/sessions/database.ts';
import type { Db } from '../../src/ports/db.ts';
import { unreachable } from '../support/lost-primary.ts';
import { tempDir } from '../support/temp.ts';
import { runSessionContract } from './sessions.contract.ts';

const addUser = async (db: Db, id: string) => {
  await db.primary.insertInto('users').values({ id, username: id, password_hash: 'x' }).execute();
};

runSessionContract({
  name: 'database (PGlite)',
  create: async (ttl) => {
    const db = await openPgliteDb(undefined);
    await addUser(db, 'user_sessions_1');
    return {
      store: createDatabaseSessionStore(db, ttl),
      userId: 'user_sessions_1',
      cleanup: () => db.close(),
    };
  },
  restartable: async () => {
    const tmp = await tempDir();
    const seed = await openPgliteDb(tmp.dir);
    await addUser(seed, 'user_restart_1');
    await seed.close();
    return {
      userId: 'user_restart_1',
      open: async () => {
        const db = await openPgliteDb(tmp.dir);
        return { store: createDatabaseSessionStore(db, 3600), close: () => db.close() };
      },
      cleanup: tmp.remove,
    };
  },
});

describe('database sessions while the primary cannot answer', () => {
  const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5000'), { code: 'ECONNREFUSED' });

  it("a logged-in user's session is read from a replica; a change of it still fails", async () => {
    const db = await openPgliteDb(undefined);
    try {
      await addUser(db, 'user_fallback_1');
      const made = await createDatabaseSessionStore(db, 3600).create('user_fallback_1', { lsn: '0/1' });
      // The primary gone (a failover, the primary data center lost); the replica (here the same rows) answers.
      const degraded = createDatabaseSessionStore(
        { primary: unreachable(refused), reader: () => db.primary } as Db,
        3600,
      );
      expect(await degraded.get(made.id)).toMatchObject({ userId: 'user_fallback_1', data: { lsn: '0/1' } });
      expect(await degraded.get('not-a-session')).toBeNull();
      await expect(degraded.update(made.id, { lsn: '0/2' })).rejects.toThrow(/ECONNREFUSED/);
      expect(await createDatabaseSessionStore(db, 3600).get(made.id)).toMatchObject({ data: { lsn: '0/1' } });
    } finally {
      await db.close();
    }
  });

  it("a primary that does not answer: the replica's copy once the hedge delay is over", async () => {
    const db = await openPgliteDb(undefined);
    try {
      await addUser(db, 'user_fallback_2');
      const made = await createDatabaseSessionStore(db, 3600).create('user_fallback_2');
      const slow = createDatabaseSessionStore(
        { primary: unreachable(() => null), reader: () => db.primary } as Db,
        3600,
        undefined,
        100,
      );
      const asked = performance.now();
      expect(await slow.get(made.id)).toMatchObject({ userId: 'user_fallback_2' });
      const ms = performance.now() - asked;
      expect(ms).toBeGreaterThanOrEqual(95);
      expect(ms).toBeLessThan(2000);
      // A session the replica does not have (made in its lag) waits for the primary: none comes here.
      const pending = await Promise.race([
        slow.get('made-in-the-lag').then(() => 'answered'),
        new Promise((r) => setTimeout(() => r('still waiting'), 400)),
      ]);
      expect(pending).toBe('still waiting');
    } finally {
      await db.close();
    }
  });

  it('any other failure of the primary is not hidden behind a replica', async () => {
    const db = await openPgliteDb(undefined);
    try {
      const broken = createDatabaseSessionStore(
        {
          primary: unreachable(() => new Error('permission denied for table sessions')),
          reader: () => db.primary,
        } as Db,
        3600,
      );
      await expect(broken.get('some-session')).rejects.toThrow(/permission denied/);
    } finally {
      await db.close();
    }
  });
});
