import path from 'node:path';
import { z } from 'zod';
import { tcpOpen } from '../../process.ts';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort } from '../component.ts';
import { hbaSources } from '../hosts.ts';
import { appDatabase, appDatabaseUrl, appUser, ensureAppDatabase, startPostgresServer } from './server.ts';

export const postgresSpec = z.object({ kind: z.literal('postgres'), name: z.string(), listen: address });

/** One PostgreSQL 15 server of its own (the `db` preset), with the app's role and database. */
export const postgres = defineComponent<z.infer<typeof postgresSpec>>({
  kind: 'postgres',
  spec: postgresSpec,
  tier: 'database',
  scope: 'dataCenter',
  stage: 10,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'password' }],
  address: (s) => hostPort(s.listen),
  async start(s, ctx) {
    const started = await startPostgresServer({
      dir: path.join(ctx.runDir, s.name),
      host: s.listen.host,
      port: s.listen.port,
      superuserPassword: ctx.state.secrets.superuser,
      hbaSources: hbaSources(ctx.topology),
    });
    await ensureAppDatabase(
      { ...s.listen, password: ctx.state.secrets.superuser },
      { user: appUser, password: ctx.state.secrets.app, database: appDatabase },
    );
    return started;
  },
  health: async (s) => ({ ok: await tcpOpen(s.listen.host, s.listen.port), role: 'primary' }),
  provides: ([s], ctx) => (s ? { db: 'postgres', databaseUrl: appDatabaseUrl(s.listen, ctx.state.secrets.app) } : {}),
});
