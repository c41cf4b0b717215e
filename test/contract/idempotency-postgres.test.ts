import { afterAll } from 'vitest';
import { openPostgresDb } from '../../src/platform/db/postgres.ts';
import { createDatabaseIdempotencyStore } from '../../src/platform/idempotency/database.ts';
import { createLogger } from '../../src/platform/observability/logger.ts';
import { createTestDatabase } from '../support/postgres.ts';
import { runIdempotencyContract } from './idempotency.contract.ts';

// The store of a site with a PostgreSQL server and no Redis (`db`, `lb`), on the test run's real server.
const database = await createTestDatabase();
const db = await openPostgresDb({ url: database.url, logger: createLogger('silent') });
afterAll(async () => {
  await db.close();
  await database.drop();
});

runIdempotencyContract({ name: 'database (PostgreSQL)', create: async () => createDatabaseIdempotencyStore(db) });
