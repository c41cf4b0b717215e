import { openPgliteDb } from '../../src/platform/db/pglite.ts';
import { createDatabaseSessionStore } from '../../src/platform/sessions/database.ts';
import type { Db } from '../../src/ports/db.ts';
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
