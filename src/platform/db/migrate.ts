import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import type { QueryBuilder } from '../../ports/db.ts';

const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

/**
 * Applies the numbered SQL files in migrations/ that have not run yet, each in
 * its own transaction, in name order. An advisory lock keeps two processes that
 * start together from applying the same file twice. With `schema` (a logical
 * shard's), the files run in that schema (created if missing), which keeps
 * its own record of them: every logical shard has the same tables.
 */
export async function migrate(db: QueryBuilder, schema?: string): Promise<string[]> {
  const files = (await readdir(migrationsDir)).filter((f) => f.endsWith('.sql')).sort();
  const applied: string[] = [];
  await db.connection().execute(async (conn) => {
    await sql`SELECT pg_advisory_lock(715517)`.execute(conn);
    try {
      if (schema) {
        await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(schema)}`.execute(conn);
        await sql`SET search_path TO ${sql.id(schema)}`.execute(conn);
      }
      await sql`CREATE TABLE IF NOT EXISTS schema_migrations (
        name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`.execute(conn);
      const done = await sql<{ name: string }>`SELECT name FROM schema_migrations`.execute(conn);
      const seen = new Set(done.rows.map((r) => r.name));
      for (const file of files) {
        if (seen.has(file)) continue;
        const text = await readFile(path.join(migrationsDir, file), 'utf8');
        await conn.transaction().execute(async (trx) => {
          await sql.raw(text).execute(trx);
          await sql`INSERT INTO schema_migrations (name) VALUES (${file})`.execute(trx);
        });
        applied.push(file);
      }
    } finally {
      if (schema) await sql`RESET search_path`.execute(conn);
      await sql`SELECT pg_advisory_unlock(715517)`.execute(conn);
    }
  });
  return applied;
}
