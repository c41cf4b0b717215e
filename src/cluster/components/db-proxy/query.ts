import pg from 'pg';
import type { ClusterState } from '../../run/state.ts';
import { processesOf } from '../../topology/select.ts';
import { appDatabase } from '../postgres/server.ts';

/**
 * A superuser connection to the current primary through a database proxy
 * (the first, or the one of shard cluster `cluster`): for checks and benchmarks.
 */
export async function primaryClient(state: ClusterState, cluster?: string): Promise<pg.Client> {
  const proxies = processesOf(state.topology, 'dbProxy');
  const proxy = cluster === undefined ? proxies[0] : proxies.find((p) => p.cluster === cluster);
  if (!proxy) throw new Error(`this topology has no database proxy${cluster ? ` of ${cluster}` : ''}`);
  const client = new pg.Client({
    host: proxy.primary.host,
    port: proxy.primary.port,
    user: 'postgres',
    password: state.secrets.superuser,
    database: appDatabase,
  });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** Runs one query as the superuser on the current primary (through the database proxy), for checks and benchmarks. */
export async function queryPrimary<T extends pg.QueryResultRow>(
  state: ClusterState,
  text: string,
  values: unknown[] = [],
): Promise<pg.QueryResult<T>> {
  const client = await primaryClient(state);
  try {
    return await client.query<T>(text, values);
  } finally {
    await client.end();
  }
}
