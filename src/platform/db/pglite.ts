import { chmod, mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
} from 'kysely';
import type { Database, Db } from '../../ports/db.ts';
import { migrate } from './migrate.ts';
import type { QueryObserver } from './postgres.ts';
import { unsharded } from './router.ts';

/**
 * PGlite has a single connection. Kysely asks for a connection per query and
 * holds it for a whole transaction, so a lock here makes concurrent requests
 * take turns instead of running inside each other's transactions.
 */
class PgliteDriver implements Driver {
  #queue: Promise<void> = Promise.resolve();
  private readonly client: PGlite;
  private readonly observe?: QueryObserver;
  constructor(client: PGlite, observe?: QueryObserver) {
    this.client = client;
    this.observe = observe;
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    let release!: () => void;
    const previous = this.#queue;
    this.#queue = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    return new PgliteConnection(this.client, release, this.observe);
  }

  async beginTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery(CompiledQuery.raw('BEGIN'));
  }
  async commitTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery(CompiledQuery.raw('COMMIT'));
  }
  async rollbackTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery(CompiledQuery.raw('ROLLBACK'));
  }
  async releaseConnection(conn: DatabaseConnection): Promise<void> {
    (conn as PgliteConnection).release();
  }
  async destroy(): Promise<void> {}
}

class PgliteConnection implements DatabaseConnection {
  private readonly client: PGlite;
  readonly release: () => void;
  private readonly observe?: QueryObserver;
  constructor(client: PGlite, release: () => void, observe?: QueryObserver) {
    this.client = client;
    this.release = release;
    this.observe = observe;
  }

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    // Like node-postgres, a query without parameters goes over the simple
    // protocol, which accepts several statements (migrations need that).
    const started = performance.now();
    const result =
      query.parameters.length === 0
        ? ((await this.client.exec(query.sql)).at(-1) ?? { rows: [], affectedRows: 0 })
        : await this.client.query<R>(query.sql, [...query.parameters]);
    this.observe?.('embedded', performance.now() - started, query.sql);
    return {
      rows: result.rows as R[],
      numAffectedRows: result.affectedRows === undefined ? undefined : BigInt(result.affectedRows),
    };
  }

  // biome-ignore lint/correctness/useYield: PGlite cannot stream
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('PGlite does not stream results');
  }
}

/** Embedded PostgreSQL (WASM) on a data directory, migrated at open. */
export async function openPgliteDb(dataDir: string | undefined, observe?: QueryObserver): Promise<Db> {
  if (dataDir) {
    // The database's files are the owner's alone (PGlite writes them with the process's umask).
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    await chmod(dataDir, 0o700);
  }
  const client = await PGlite.create(dataDir ? { dataDir } : {});
  const db = new Kysely<Database>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => new PgliteDriver(client, observe),
      createIntrospector: (k) => new PostgresIntrospector(k),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
  });
  await migrate(db);
  return unsharded({
    primary: db,
    reader: () => db,
    transaction: (fn) => db.transaction().execute(fn),
    // One embedded database: every read sees every write already.
    consistency: { scope: (fn) => fn(), begin: () => {}, token: async () => undefined },
    ping: async () => {
      await db.executeQuery(CompiledQuery.raw('SELECT 1'));
    },
    close: async () => {
      await db.destroy();
      await client.close();
    },
  });
}
