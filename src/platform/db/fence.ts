/**
 * The write fence of a logical shard: a statement trigger on each of its
 * tables that refuses INSERT, UPDATE and DELETE with SQLSTATE 42501 (as a
 * revoked privilege would, but for every role, the owner and superusers
 * too). Creating it takes each table's SHARE ROW EXCLUSIVE lock, so it waits
 * for the writes in flight to commit and lets no new one start: once
 * `fence` returns, the shard's last write on this cluster is known (a
 * transaction that began before it and writes after it is refused, and run
 * again by the web server where the map then says).
 * Logical replication's apply does not fire it (its session's replication
 * role is `replica`), so a move's target can stay fenced while it catches up.
 */
export interface SqlRunner {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;

const fencedFunction = `CREATE OR REPLACE FUNCTION public.scaleout_fenced() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'logical shard % is fenced: it is moving, and takes no writes here', TG_TABLE_SCHEMA
    USING ERRCODE = 'insufficient_privilege';
END
$fn$`;

async function tablesOf(db: SqlRunner, schema: string): Promise<string[]> {
  const { rows } = await db.query(`SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, [schema]);
  return rows.map((r) => String(r.tablename));
}

/**
 * Fences every table of `schema`, in one transaction (all at once, or none).
 * Each try waits at most `lockWaitMs` for a table's lock and then lets go of
 * all it took: a transaction of the site that holds one table and wants
 * another would otherwise deadlock with the fence, and PostgreSQL (after its
 * 1 s deadlock_timeout) might abort the site's. Tries again until
 * `timeoutMs` has passed.
 */
export async function fence(db: SqlRunner, schema: string, timeoutMs = 10_000, lockWaitMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await db.query('BEGIN');
    try {
      await db.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockWaitMs))}`);
      await db.query(fencedFunction);
      for (const table of await tablesOf(db, schema)) {
        await db.query(`DROP TRIGGER IF EXISTS scaleout_fence ON ${ident(schema)}.${ident(table)}`);
        await db.query(
          `CREATE TRIGGER scaleout_fence BEFORE INSERT OR UPDATE OR DELETE ON ${ident(schema)}.${ident(table)}
             FOR EACH STATEMENT EXECUTE FUNCTION public.scaleout_fenced()`,
        );
      }
      await db.query('COMMIT');
      return;
    } catch (err) {
      await db.query('ROLLBACK').catch(() => {});
      const busy = (err as { code?: string }).code === '55P03'; // lock_not_available
      if (!busy || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 60));
    }
  }
}

/** Takes the fence away: the shard takes writes on this cluster again. */
export async function unfence(db: SqlRunner, schema: string): Promise<void> {
  await db.query('BEGIN');
  try {
    for (const table of await tablesOf(db, schema)) {
      await db.query(`DROP TRIGGER IF EXISTS scaleout_fence ON ${ident(schema)}.${ident(table)}`);
    }
    await db.query('COMMIT');
  } catch (err) {
    await db.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** Whether any table of `schema` is fenced. */
export async function isFenced(db: SqlRunner, schema: string): Promise<boolean> {
  const { rows } = await db.query(
    `SELECT count(*)::int AS n FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND t.tgname = 'scaleout_fence'`,
    [schema],
  );
  return Number(rows[0]?.n ?? 0) > 0;
}
