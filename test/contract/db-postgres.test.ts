import { openPostgresDb } from '../../src/platform/db/postgres.ts';
import { createLogger } from '../../src/platform/observability/logger.ts';
import { createTestDatabase } from '../support/postgres.ts';
import { runDbContract } from './db.contract.ts';

runDbContract({
  name: 'PostgreSQL 15 (node-postgres)',
  create: async () => {
    const database = await createTestDatabase();
    const db = await openPostgresDb({ url: database.url, logger: createLogger('silent') });
    return {
      db,
      cleanup: async () => {
        await db.close();
        await database.drop();
      },
    };
  },
});
