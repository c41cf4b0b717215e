import { openPostgresDb } from '../../src/platform/db/postgres.ts';
import { createLogger } from '../../src/platform/observability/logger.ts';
import { createDatabaseSessionStore } from '../../src/platform/sessions/database.ts';
import type { Db } from '../../src/ports/db.ts';
import { createTestDatabase } from '../support/postgres.ts';
import { runSessionContract } from './sessions.contract.ts';

const open = (url: string) => openPostgresDb({ url, logger: createLogger('silent') });
const addUser = async (db: Db, id: string) => {
  await db.primary.insertInto('users').values({ id, username: id, password_hash: 'x' }).execute();
};

runSessionContract({
  name: 'database (PostgreSQL)',
  create: async (ttl) => {
    const database = await createTestDatabase();
    const db = await open(database.url);
    await addUser(db, 'user_pg_sessions');
    return {
      store: createDatabaseSessionStore(db, ttl),
      userId: 'user_pg_sessions',
      cleanup: async () => {
        await db.close();
        await database.drop();
      },
    };
  },
  restartable: async () => {
    const database = await createTestDatabase();
    const seed = await open(database.url);
    await addUser(seed, 'user_pg_restart');
    await seed.close();
    return {
      userId: 'user_pg_restart',
      open: async () => {
        const db = await open(database.url);
        return { store: createDatabaseSessionStore(db, 3600), close: () => db.close() };
      },
      cleanup: database.drop,
    };
  },
});
