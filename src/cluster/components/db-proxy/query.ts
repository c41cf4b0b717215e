import pg from 'pg';
import type { ClusterState } from '../../run/state.ts';
import { processesOf } from '../../topology/select.ts';
import { appDatabase } from '../postgres/server.ts';

/** A superuser connection to the current primary, through the (first) database proxy: for checks and benchmarks. */
export async function primaryClient(state: ClusterState): Promise<pg.Client> {
  const [proxy] = processesOf(state.topology, 'dbProxy');
  if (!proxy) throw new Error('this topology has no database proxy');
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
