import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import type { Logger } from 'pino';
import { type Database, type Db, type ShardDb, StoreUnavailableError } from '../../ports/db.ts';
import { logicalShards, type ShardMap, shardOfId, shardOfUsername, shardSchema } from '../../ports/shards.ts';
import { parseLsn } from './consistency.ts';
import { migrate } from './migrate.ts';
import { type ClusterConnections, clusterConsistency, connectCluster, type PostgresDbOptions } from './postgres.ts';
import type { ReplicaDiscovery } from './replicas.ts';

/** The shard map as this process knows it, and how it learns of changes. */
export interface ShardMapSource {
  current(): ShardMap;
  /** Resolves with the map once its version passes `version`, or after `ms` with the map as it is. */
  changed(version: number, ms: number): Promise<ShardMap>;
  /** Reads the authoritative copy now (a query found its shard gone: the map may have moved it). */
  refresh(): Promise<ShardMap>;
  close(): Promise<void>;
}

/**
 * A map held in this process, and its waiters: `set` a newer one (an older
 * or equal version is ignored) and every `changed` waiting on it resolves.
 */
export function heldShardMap(first: ShardMap): Pick<ShardMapSource, 'current' | 'changed'> & {
  set(map: ShardMap): boolean;
} {
  let map = first;
  const waiters = new Set<() => void>();
  return {
    current: () => map,
    set(next) {
      if (next.version <= map.version) return false;
      map = next;
      for (const w of [...waiters]) w();
      return true;
    },
    changed: (version, ms) =>
      new Promise((resolve) => {
        if (map.version > version) return resolve(map);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(done);
          resolve(map);
        };
        const timer = setTimeout(done, ms);
        waiters.add(done);
      }),
  };
}

/** A map that never changes (tests, and a topology that has not moved a shard). */
export function fixedShardMap(map: ShardMap): ShardMapSource {
  return {
    current: () => map,
    changed: async (_version, ms) => {
      await new Promise((r) => setTimeout(r, ms));
      return map;
    },
    refresh: async () => map,
    close: async () => {},
  };
}

/** Where a shard cluster is: its primary's URL (through its proxy), and how to find its replicas. */
export interface ShardClusterAddress {
  name: string;
  url: string;
  replicas?: ReplicaDiscovery;
}

export interface ShardedDbOptions extends Omit<PostgresDbOptions, 'url' | 'replicas'> {
  /** The clusters known at start; the first holds what is not a user's. */
  clusters: ShardClusterAddress[];
  /**
   * Finds a cluster the map names that this process did not know at start
   * (one added to the running topology: `scaleout reshard add-cluster`).
   */
  discover?: (name: string) => Promise<ShardClusterAddress | undefined>;
  map: ShardMapSource;
  /**
   * How long a query on a shard that is moving waits for the map to change
   * (the write pause of a move) before it answers 503.
   */
  moveWaitMs?: number;
}

/** SQLSTATEs of a shard that is not (or no longer) writable here: fenced by a move, or dropped after one. */
const movedCodes = new Set(['42501', '42P01', '3F000']);
const isMoved = (err: unknown) => movedCodes.has((err as { code?: string })?.code ?? '');

/** A query in a transaction found its shard moved: the transaction is run again where the map now says. */
class ShardMovedError extends Error {
  readonly version: number;
  constructor(shard: number, version: number, options?: { cause?: unknown }) {
    super(`logical shard ${shard} moved`, options);
    this.name = 'ShardMovedError';
    this.version = version;
  }
}

interface Routed {
  inner: DatabaseConnection;
  origin: Driver;
  cluster: ClusterConnections;
  version: number;
  inTransaction: boolean;
}

/**
 * A logical shard's driver: each connection comes from the cluster the map
 * names now. A statement outside a transaction that finds the shard moved
 * (fenced on the old cluster, or dropped from it) waits for the map to change
 * and runs again on the new cluster (nothing was written: the fence refused
 * it); inside a transaction it fails with ShardMovedError, and the store
 * runs the whole transaction again.
 */
class ShardDriver implements Driver {
  readonly #shard: number;
  readonly #role: 'primary' | 'reader';
  readonly #store: ShardedStore;
  constructor(shard: number, role: 'primary' | 'reader', store: ShardedStore) {
    this.#shard = shard;
    this.#role = role;
    this.#store = store;
  }
  async init() {}
  async acquireConnection(): Promise<DatabaseConnection> {
    const map = this.#store.map.current();
    const cluster = await this.#store.cluster(map.clusters[this.#shard] as string);
    const origin = this.#role === 'primary' ? cluster.primaryDriver : cluster.readerDriver;
    const inner = await origin.acquireConnection();
    const routed: Routed = { inner, origin, cluster, version: map.version, inTransaction: false };
    const shard = this.#shard;
    const store = this.#store;
    const role = this.#role;
    const connection: DatabaseConnection & { routed: Routed } = {
      routed,
      async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
        store.queries[shard] = (store.queries[shard] ?? 0) + 1;
        // The request wrote on this cluster: its read-your-writes token must cover this cluster's position.
        const writes = role === 'primary' && query.query.kind !== 'SelectQueryNode';
        if (writes) routed.cluster.scope.markWrite();
        try {
          return await routed.inner.executeQuery<R>(query);
        } catch (err) {
          if (!isMoved(err)) throw err;
          if (routed.inTransaction) throw new ShardMovedError(shard, routed.version, { cause: err });
          const next = await store.awaitMove(shard, routed.version, err);
          const now = await store.cluster(next.clusters[shard] as string);
          if (writes) now.scope.markWrite();
          const d = role === 'primary' ? now.primaryDriver : now.readerDriver;
          const fresh = await d.acquireConnection();
          try {
            return await fresh.executeQuery<R>(query);
          } finally {
            await d.releaseConnection(fresh);
          }
        }
      },
      streamQuery<R>(query: CompiledQuery, chunkSize: number) {
        return routed.inner.streamQuery<R>(query, chunkSize);
      },
    };
    return connection;
  }
  beginTransaction(conn: DatabaseConnection, settings: TransactionSettings) {
    const r = (conn as unknown as { routed: Routed }).routed;
    r.inTransaction = true;
    return r.origin.beginTransaction(r.inner, settings);
  }
  commitTransaction(conn: DatabaseConnection) {
    const r = (conn as unknown as { routed: Routed }).routed;
    return r.origin.commitTransaction(r.inner);
  }
  rollbackTransaction(conn: DatabaseConnection) {
    const r = (conn as unknown as { routed: Routed }).routed;
    return r.origin.rollbackTransaction(r.inner);
  }
  releaseConnection(conn: DatabaseConnection) {
    const r = (conn as unknown as { routed: Routed }).routed;
    r.inTransaction = false;
    return r.origin.releaseConnection(r.inner);
  }
  async destroy() {}
}

const dialect = (driver: Driver) => ({
  createAdapter: () => new PostgresAdapter(),
  createDriver: () => driver,
  createIntrospector: (k: Kysely<unknown>) => new PostgresIntrospector(k),
  createQueryCompiler: () => new PostgresQueryCompiler(),
});

class ShardedStore {
  readonly map: ShardMapSource;
  /** Statements run per logical shard since start (skew, and the hot shard). */
  readonly queries: number[] = new Array<number>(logicalShards).fill(0);
  readonly #clusters: Map<string, ClusterConnections>;
  /** Clusters being found and connected (one lookup each, however many queries wait for it). */
  readonly #joining = new Map<string, Promise<ClusterConnections>>();
  readonly #connect: (c: ShardClusterAddress) => ClusterConnections;
  readonly #discover: ShardedDbOptions['discover'];
  readonly #moveWaitMs: number;
  readonly #logger: Logger;
  constructor(
    map: ShardMapSource,
    clusters: Map<string, ClusterConnections>,
    o: Pick<ShardedDbOptions, 'discover'> & {
      connect: (c: ShardClusterAddress) => ClusterConnections;
      moveWaitMs: number;
      logger: Logger;
    },
  ) {
    this.map = map;
    this.#clusters = clusters;
    this.#connect = o.connect;
    this.#discover = o.discover;
    this.#moveWaitMs = o.moveWaitMs;
    this.#logger = o.logger;
  }
  /** A cluster's connections; one that this process does not know yet is found (discover) and connected first. */
  async cluster(name: string): Promise<ClusterConnections> {
    const known = this.#clusters.get(name);
    if (known) return known;
    let joining = this.#joining.get(name);
    if (!joining) {
      joining = this.#join(name).finally(() => this.#joining.delete(name));
      this.#joining.set(name, joining);
    }
    return joining;
  }
  async #join(name: string): Promise<ClusterConnections> {
    const address = await this.#discover?.(name).catch((err: Error) => {
      throw new StoreUnavailableError(`shard cluster ${name}: its address could not be read`, { cause: err });
    });
    if (!address) throw new StoreUnavailableError(`the shard map names a cluster this process does not know: ${name}`);
    const c = this.#connect(address);
    // Through its Kysely once: that initialises the drivers the logical shards borrow (their pool), and
    // shows the cluster answers before any shard's query is sent to it.
    try {
      await c.primary.executeQuery(CompiledQuery.raw('SELECT 1'));
      await c.start();
    } catch (err) {
      await c.close().catch(() => {});
      throw new StoreUnavailableError(`shard cluster ${name} does not answer`, { cause: err });
    }
    this.#clusters.set(name, c);
    this.#logger.info({ cluster: name }, 'shard cluster joined: the map placed a logical shard on it');
    return c;
  }
  /**
   * The shard was found moved at map `version`: read the map again and wait
   * (up to moveWaitMs) until it names a newer home; else 503.
   */
  async awaitMove(shard: number, version: number, cause: unknown): Promise<ShardMap> {
    let map = await this.map.refresh().catch(() => this.map.current());
    const deadline = Date.now() + this.#moveWaitMs;
    while (map.version <= version && Date.now() < deadline) {
      map = await this.map.changed(version, Math.min(250, deadline - Date.now()));
      if (map.version <= version) map = await this.map.refresh().catch(() => map);
    }
    if (map.version <= version) {
      this.#logger.warn({ shard, version }, 'a logical shard is fenced and the map has not moved it yet');
      throw new StoreUnavailableError(`logical shard ${shard} is moving`, { cause });
    }
    return map;
  }
  clusters(): ClusterConnections[] {
    return [...this.#clusters.values()];
  }
  /** Each known cluster with its name, in the order they became known. */
  named(): [string, ClusterConnections][] {
    return [...this.#clusters];
  }
}

/** A cluster's token in a composite read-your-writes token: `name:lsn`, joined by '+' (cookie-safe). */
const tokenPart = (name: string, lsn: string) => `${name}:${lsn}`;

/**
 * The sharded store: `clusters` (each a Patroni cluster behind its own
 * proxy, with its replicas) and the shard map that places the 64 logical
 * shards on them. Each logical shard is a schema (`shard_NN`) with every
 * table; `forKey` gives the shard of an id (one ShardDb per logical shard,
 * whose connections go wherever the map says at the time). Each web server
 * migrates the schemas its map places on each cluster at start (a move
 * creates the target's itself). Read-your-writes is per cluster: the token
 * carries each written cluster's WAL position.
 */
export async function openShardedDb(
  options: ShardedDbOptions,
): Promise<Db & { map: ShardMapSource; shardQueries(): number[] }> {
  const connect = (c: ShardClusterAddress) => connectCluster({ ...options, url: c.url, replicas: c.replicas });
  const connections = new Map(options.clusters.map((c) => [c.name, connect(c)]));
  const store = new ShardedStore(options.map, connections, {
    connect,
    discover: options.discover,
    moveWaitMs: options.moveWaitMs ?? 5000,
    logger: options.logger,
  });
  const map = options.map.current();
  for (const [name, c] of connections) {
    for (let k = 0; k < logicalShards; k++) if (map.clusters[k] === name) await migrate(c.primary, shardSchema(k));
  }
  // What is not a user's (database sessions, rate limits, idempotency keys) lives on the first cluster.
  const [home] = connections.values();
  if (!home) throw new Error('a sharded store needs a cluster');
  await migrate(home.primary);
  for (const c of connections.values()) await c.start();

  const shards: ShardDb[] = Array.from({ length: logicalShards }, (_, k) => {
    const primary = new Kysely<Database>({ dialect: dialect(new ShardDriver(k, 'primary', store)) }).withSchema(
      shardSchema(k),
    );
    const reader = new Kysely<Database>({ dialect: dialect(new ShardDriver(k, 'reader', store)) }).withSchema(
      shardSchema(k),
    );
    return {
      primary,
      reader: () => reader,
      async transaction(fn) {
        for (let attempt = 0; ; attempt++) {
          try {
            return await primary.transaction().execute(fn);
          } catch (err) {
            if (!(err instanceof ShardMovedError) || attempt >= 2) throw err;
            await store.awaitMove(k, err.version, err);
          }
        }
      },
    };
  });
  const shardOf = (k: number) => {
    const s = shards[k];
    if (!s) throw new RangeError(`no logical shard ${k}`);
    return s;
  };
  // Read-your-writes over the clusters known when the request starts (one joined later counts from the next).
  const consistencies = () => store.named().map(([n, c]) => [n, clusterConsistency(c)] as const);

  return {
    map: options.map,
    shardQueries: () => [...store.queries],
    primary: home.primary,
    reader: () => home.reader,
    transaction: (fn) => home.primary.transaction().execute(fn),
    forKey: (id) => shardOf(Math.max(0, shardOfId(id))),
    forUsername: (username) => shardOf(shardOfUsername(username)),
    each: () => shards,
    consistency: {
      scope: (fn) => {
        const all = consistencies();
        const nest = (i: number): void => {
          const c = all[i];
          if (c) c[1].scope(() => nest(i + 1));
          else fn();
        };
        nest(0);
      },
      begin: (token) => {
        const parts = new Map(
          (token ?? '').split('+').map((p) => {
            const at = p.lastIndexOf(':');
            return [p.slice(0, at), p.slice(at + 1)] as const;
          }),
        );
        for (const [n, c] of consistencies()) {
          const lsn = parts.get(n);
          c.begin(lsn && parseLsn(lsn) !== null ? lsn : undefined);
        }
      },
      token: async () => {
        const parts = await Promise.all(
          consistencies().map(async ([n, c]) => {
            const lsn = await c.token();
            return lsn ? tokenPart(n, lsn) : undefined;
          }),
        );
        const present = parts.filter((p): p is string => p !== undefined);
        return present.length > 0 ? present.join('+') : undefined;
      },
    },
    // Ready while any cluster answers: a shard cluster that is down (or failing over) takes its own users'
    // requests down (503), never the whole site's readiness with them.
    ping: async () => {
      await Promise.any(store.clusters().map((c) => c.reader.executeQuery(CompiledQuery.raw('SELECT 1'))));
    },
    close: async () => {
      await options.map.close();
      for (const c of store.clusters()) await c.close();
    },
  };
}
