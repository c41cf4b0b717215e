import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  type KyselyPlugin,
  PostgresAdapter,
  PostgresDriver,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { type Database, type Db, StoreUnavailableError } from '../../ports/db.ts';
import { ConsistencyScope } from './consistency.ts';
import { guardPool, isUnavailable } from './errors.ts';
import { migrate } from './migrate.ts';
import { type ReplicaDiscovery, ReplicaSet } from './replicas.ts';
import { unsharded } from './router.ts';

export interface PostgresDbOptions {
  /** The primary: a server, or the load balancer's primary port in front of Patroni. */
  url: string;
  /** Where reads may go; without it every read goes to the primary. */
  replicas?: ReplicaDiscovery;
  poolSize?: number;
  /** How long a query waits for a primary to accept connections (a failover) before it fails with 503. */
  primaryWaitMs?: number;
  maxReplicaLagBytes?: number;
  replicaPollMs?: number;
  /** Told of every query: where it ran and how long it took. */
  observe?: QueryObserver;
  logger: Logger;
}

export type QueryObserver = (target: 'primary' | 'replica' | 'embedded', ms: number, sql: string) => void;

const unavailable = (err: unknown) =>
  isUnavailable(err) ? new StoreUnavailableError('the database is unavailable', { cause: err }) : err;

/** Wraps a connection so that connection-level failures surface as StoreUnavailableError. */
class GuardedConnection implements DatabaseConnection {
  readonly inner: DatabaseConnection;
  readonly origin: Driver;
  private readonly target: 'primary' | 'replica';
  private readonly observe: QueryObserver | undefined;
  private readonly onQueryError?: (err: unknown, query: CompiledQuery) => Promise<QueryResult<unknown> | undefined>;
  constructor(
    inner: DatabaseConnection,
    origin: Driver,
    target: 'primary' | 'replica',
    observe: QueryObserver | undefined,
    onQueryError?: (err: unknown, query: CompiledQuery) => Promise<QueryResult<unknown> | undefined>,
  ) {
    this.inner = inner;
    this.origin = origin;
    this.target = target;
    this.observe = observe;
    this.onQueryError = onQueryError;
  }

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const started = performance.now();
    try {
      const result = await this.inner.executeQuery<R>(query);
      this.observe?.(this.target, performance.now() - started, query.sql);
      return result;
    } catch (err) {
      const recovered = await this.onQueryError?.(err, query);
      if (recovered) return recovered as QueryResult<R>;
      throw unavailable(err);
    }
  }

  streamQuery<R>(query: CompiledQuery, chunkSize: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

/**
 * The primary. New connections are retried for up to `waitMs` while nobody
 * accepts them (during a failover nothing has been sent yet, so that is safe);
 * a failure after a query was sent is reported, never retried, because its
 * outcome is unknown.
 */
class PrimaryDriver implements Driver {
  readonly inner: PostgresDriver;
  private readonly waitMs: number;
  private readonly observe?: QueryObserver;
  constructor(inner: PostgresDriver, waitMs: number, observe?: QueryObserver) {
    this.inner = inner;
    this.waitMs = waitMs;
    this.observe = observe;
  }
  init() {
    return this.inner.init();
  }
  async acquireConnection(): Promise<DatabaseConnection> {
    const deadline = Date.now() + this.waitMs;
    for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
      try {
        const conn = await this.inner.acquireConnection();
        return new GuardedConnection(conn, this.inner, 'primary', this.observe);
      } catch (err) {
        if (!isUnavailable(err) || Date.now() + delay > deadline) throw unavailable(err);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
  beginTransaction(conn: DatabaseConnection, settings: TransactionSettings) {
    return this.inner
      .beginTransaction((conn as GuardedConnection).inner, settings)
      .catch((e) => Promise.reject(unavailable(e)));
  }
  commitTransaction(conn: DatabaseConnection) {
    return this.inner.commitTransaction((conn as GuardedConnection).inner).catch((e) => Promise.reject(unavailable(e)));
  }
  rollbackTransaction(conn: DatabaseConnection) {
    return this.inner.rollbackTransaction((conn as GuardedConnection).inner as never);
  }
  releaseConnection(conn: DatabaseConnection) {
    return this.inner.releaseConnection((conn as GuardedConnection).inner as never);
  }
  destroy() {
    return this.inner.destroy();
  }
}

/**
 * Reads: a replica that has replayed the request's writes, else the primary.
 * A read that fails on a replica because the replica is gone is run again on
 * the primary (reads are safe to repeat) and the replica leaves the rotation.
 */
class ReaderDriver implements Driver {
  private readonly primary: PrimaryDriver;
  private readonly replicas: ReplicaSet;
  private readonly scope: ConsistencyScope;
  private readonly observe?: QueryObserver;
  constructor(primary: PrimaryDriver, replicas: ReplicaSet, scope: ConsistencyScope, observe?: QueryObserver) {
    this.primary = primary;
    this.replicas = replicas;
    this.scope = scope;
    this.observe = observe;
  }
  async init() {}
  async acquireConnection(): Promise<DatabaseConnection> {
    // A request that has written reads on the primary from then on: a replica may not have its write yet.
    // An earlier request's write (the session's position) a replica may have replayed since its last poll.
    const minLsn = this.scope.minLsn;
    const target = this.scope.wrote
      ? undefined
      : (this.replicas.pick(minLsn) ?? (minLsn ? await this.replicas.pickCaughtUp(minLsn) : undefined));
    if (target) {
      try {
        const conn = await target.driver.acquireConnection();
        return new GuardedConnection(conn, target.driver, 'replica', this.observe, async (err, query) => {
          if (!isUnavailable(err)) return undefined;
          this.replicas.markDown(target.name, (err as Error).message);
          const fallback = await this.primary.acquireConnection();
          try {
            return await fallback.executeQuery(query);
          } finally {
            await this.primary.releaseConnection(fallback);
          }
        });
      } catch (err) {
        this.replicas.markDown(target.name, (err as Error).message);
      }
    }
    return this.primary.acquireConnection();
  }
  beginTransaction(conn: DatabaseConnection, settings: TransactionSettings) {
    const g = conn as GuardedConnection;
    return g.origin.beginTransaction(g.inner, settings);
  }
  commitTransaction(conn: DatabaseConnection) {
    const g = conn as GuardedConnection;
    return g.origin.commitTransaction(g.inner);
  }
  rollbackTransaction(conn: DatabaseConnection) {
    const g = conn as GuardedConnection;
    return g.origin.rollbackTransaction(g.inner);
  }
  releaseConnection(conn: DatabaseConnection) {
    const g = conn as GuardedConnection;
    return g.origin.releaseConnection(g.inner);
  }
  async destroy() {}
}

/** Marks the request as having written whenever the primary runs anything but a SELECT. */
const writeTracker = (scope: ConsistencyScope): KyselyPlugin => ({
  transformQuery(args) {
    if (args.node.kind !== 'SelectQueryNode') scope.markWrite();
    return args.node;
  },
  async transformResult(args) {
    return args.result;
  },
});

const dialect = (driver: Driver) => ({
  createAdapter: () => new PostgresAdapter(),
  createDriver: () => driver,
  createIntrospector: (k: Kysely<unknown>) => new PostgresIntrospector(k),
  createQueryCompiler: () => new PostgresQueryCompiler(),
});

/** PostgreSQL through node-postgres: writes on the primary, reads on replicas with read-your-writes. */
export interface PostgresDb extends Db {
  replicaStates(): ReturnType<ReplicaSet['states']>;
  poolStats(): { total: number; idle: number; waiting: number };
}

/**
 * One PostgreSQL cluster's connections, unmigrated: the primary (its driver
 * and a Kysely with the write tracker), the reader (replicas with
 * read-your-writes, else the primary) and the request scope both share. The
 * unsharded store is one of these; the sharded store has one per cluster.
 */
export interface ClusterConnections {
  primaryDriver: Driver;
  readerDriver: Driver;
  primary: Kysely<Database>;
  reader: Kysely<Database>;
  scope: ConsistencyScope;
  /** The primary's WAL position now (retried through a failover). */
  currentLsn(): Promise<string>;
  /** Starts watching the replicas. */
  start(): Promise<void>;
  replicaStates(): ReturnType<ReplicaSet['states']>;
  poolStats(): { total: number; idle: number; waiting: number };
  close(): Promise<void>;
}

export function connectCluster(options: PostgresDbOptions): ClusterConnections {
  const { logger } = options;
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 2000,
    idleTimeoutMillis: 30_000,
  });
  guardPool(pool, (err) => logger.warn({ err: err.message }, 'primary connection lost'));
  const scope = new ConsistencyScope();
  const primaryDriver = new PrimaryDriver(new PostgresDriver({ pool }), options.primaryWaitMs ?? 8000, options.observe);
  const primary = new Kysely<Database>({ dialect: dialect(primaryDriver), plugins: [writeTracker(scope)] });
  // Read after a write has committed (the session's read-your-writes token), so a connection that is slow to
  // open under load, or a failover, must not fail the answer: the read is retried as a new connection is.
  const currentLsn = async () => {
    const deadline = Date.now() + (options.primaryWaitMs ?? 8000);
    for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
      try {
        const res = await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
        return res.rows[0]?.lsn ?? '0/0';
      } catch (err) {
        if (!isUnavailable(err) || Date.now() + delay > deadline) throw unavailable(err);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  };

  let replicas: ReplicaSet | undefined;
  let reader = primary;
  let readerDriver: Driver = primaryDriver;
  if (options.replicas) {
    replicas = new ReplicaSet({
      discovery: options.replicas,
      connectionString: options.url,
      primaryLsn: currentLsn,
      maxLagBytes: options.maxReplicaLagBytes ?? 16 * 1024 * 1024,
      intervalMs: options.replicaPollMs ?? 250,
      poolSize: options.poolSize ?? 10,
      logger,
    });
    readerDriver = new ReaderDriver(primaryDriver, replicas, scope, options.observe);
    reader = new Kysely<Database>({ dialect: dialect(readerDriver) });
  }
  return {
    primaryDriver,
    readerDriver,
    primary,
    reader,
    scope,
    currentLsn,
    start: async () => {
      await replicas?.start();
    },
    replicaStates: () => replicas?.states() ?? [],
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    close: async () => {
      await replicas?.close();
      await primary.destroy();
      if (reader !== primary) await reader.destroy();
    },
  };
}

/** A cluster's read-your-writes, for the store's port: begin with a token, and the token after the request. */
export const clusterConsistency = (c: ClusterConnections): Db['consistency'] => ({
  scope: (fn) => c.scope.run(fn),
  begin: (token) => c.scope.begin(token),
  // Only a request that wrote needs a new position; the primary's current one covers its commits.
  token: async () => (c.scope.wrote ? c.currentLsn() : c.scope.minLsn),
});

export async function openPostgresDb(options: PostgresDbOptions): Promise<PostgresDb> {
  const cluster = connectCluster(options);
  const { primary, reader } = cluster;
  await migrate(primary);
  await cluster.start();

  return unsharded({
    primary,
    reader: () => reader,
    transaction: (fn) => primary.transaction().execute(fn),
    consistency: clusterConsistency(cluster),
    // Ready means "can answer": a healthy replica is enough, so that while the
    // primary fails over the load balancer keeps this server for reads (writes
    // answer 503 meanwhile) instead of taking the whole site down.
    ping: async () => {
      await reader.executeQuery(CompiledQuery.raw('SELECT 1'));
    },
    replicaStates: cluster.replicaStates,
    poolStats: cluster.poolStats,
    close: cluster.close,
  });
}
