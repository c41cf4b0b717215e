import { afterAll } from 'vitest';
import { openPgliteDb } from '../../src/platform/db/pglite.ts';
import { createDatabaseIdempotencyStore } from '../../src/platform/idempotency/database.ts';
import { createMemoryIdempotencyStore } from '../../src/platform/idempotency/memory.ts';
import { runIdempotencyContract } from './idempotency.contract.ts';

const db = await openPgliteDb(undefined);
afterAll(() => db.close());

runIdempotencyContract({ name: 'database (PGlite)', create: async () => createDatabaseIdempotencyStore(db) });
runIdempotencyContract({ name: 'in-process', create: async () => createMemoryIdempotencyStore() });
