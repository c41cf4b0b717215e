import { type Driver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler } from 'kysely';
import type { Database, Db, ShardDb } from '../../src/ports/db.ts';

/** A query builder whose every query fails as a primary that cannot be reached does (or with `error`). */
export function unreachable(error: () => Error | null): Kysely<Database> {
  const driver: Driver = {
    init: async () => {},
    // null: it never answers (a primary waited for through a failover).
    acquireConnection: () => {
      const e = error();
      return e ? Promise.reject(e) : new Promise<never>(() => {});
    },
    beginTransaction: async () => {},
    commitTransaction: async () => {},
    rollbackTransaction: async () => {},
    releaseConnection: async () => {},
    destroy: async () => {},
  };
  return new Kysely<Database>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => driver,
      createIntrospector: (k) => new PostgresIntrospector(k),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
  });
}

/**
 * `db` as a web server sees it while its primary never answers (a failover,
 * or in a second data center the primary one lost): every primary query
 * waits, reads from the replica (here `db`'s own rows) answer.
 */
export function withLostPrimary(db: Db): Db {
  const lost: ShardDb = {
    primary: unreachable(() => null),
    reader: () => db.reader(),
    transaction: () => new Promise<never>(() => {}),
  };
  return {
    ...lost,
    forKey: () => lost,
    forUsername: () => lost,
    each: () => [lost],
    consistency: db.consistency,
    ping: () => db.ping(),
    close: async () => {},
  };
}
