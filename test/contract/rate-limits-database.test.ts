import { afterAll } from 'vitest';
import { openPgliteDb } from '../../src/platform/db/pglite.ts';
import { createDatabaseRateLimiter } from '../../src/platform/rate-limits/database.ts';
import { runRateLimiterContract } from './rate-limits.contract.ts';

const db = await openPgliteDb(undefined);
afterAll(() => db.close());

runRateLimiterContract({ name: 'database (PGlite)', create: async () => createDatabaseRateLimiter(db) });
