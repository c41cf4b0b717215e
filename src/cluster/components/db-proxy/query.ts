import pg from 'pg';
import type { ClusterState } from '../../run/state.ts';
import { processesOf } from '../../topology/select.ts';
import { appDatabase, appUser } from '../postgres/server.ts';

/**
 * A superuser connection to the current primary through a database proxy
 * (the first, or the one of shard cluster `cluster`): for checks and benchmarks.
 */
export async function primaryClient(
  state: ClusterState,
  cluster?: string,
  as: 'superuser' | 'app' = 'superuser',
): Promise<pg.Client> {
  const proxies = processesOf(state.topology, 'dbProxy');
  const proxy = cluster === undefined ? proxies[0] : proxies.find((p) => p.cluster === cluster);
  if (!proxy) throw new Error(`this topology has no database proxy${cluster ? ` of ${cluster}` : ''}`);
  const client = new pg.Client({
    host: proxy.primary.host,
    port: proxy.primary.port,
    user: as === 'superuser' ? 'postgres' : appUser,
    password: as === 'superuser' ? state.secrets.superuser : state.secrets.app,
    database: appDatabase,
  });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/**
 * A superuser connection to one PostgreSQL address of the topology (a node, or
 * a proxy's port): for the control plane's checks (the witness, a switchover).
 */
export async function superuserClient(
  state: Pick<ClusterState, 'secrets'>,
  at: { host: string; port: number },
  o: { database?: string; timeoutMs?: number; statementTimeoutMs?: number } = {},
): Promise<pg.Client> {
  const client = new pg.Client({
    host: at.host,
    port: at.port,
    user: 'postgres',
    password: state.secrets.superuser,
    database: o.database ?? 'postgres',
    connectionTimeoutMillis: o.timeoutMs ?? 2000,
    ...(o.statementTimeoutMs ? { statement_timeout: o.statementTimeoutMs } : {}),
  });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** `fn` on a connection to a cluster's primary (through its proxy), closed after. */
export async function withPrimary<T>(
  state: ClusterState,
  cluster: string | undefined,
  fn: (c: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await primaryClient(state, cluster);
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Runs one query as the superuser on the current primary (through the database proxy), for checks and benchmarks. */
export async function queryPrimary<T extends pg.QueryResultRow>(
  state: ClusterState,
  text: string,
  values: unknown[] = [],
): Promise<pg.QueryResult<T>> {
  return withPrimary(state, undefined, (c) => c.query<T>(text, values));
}
