import { z } from 'zod';
import { tcpOpen, waitUntil } from '../../process.ts';
import { address } from '../../topology/address.ts';
import { defineComponent, hostPort, type RunContext } from '../component.ts';
import { dbProxyConfig, startHaproxy } from '../load-balancer/haproxy.ts';
import { appDatabase, appDatabaseUrl, appUser, ensureAppDatabase } from '../postgres/server.ts';

export const dbProxySpec = z.object({
  kind: z.literal('dbProxy'),
  name: z.string(),
  /** Routes to the Patroni leader. */
  primary: address,
  /** Round robin over streaming replicas. */
  replicas: address,
  stats: address,
});
type DbProxy = z.infer<typeof dbProxySpec>;

const nodesOf = (ctx: RunContext) => ctx.scope.filter((p) => p.kind === 'patroni');

/** HAProxy in front of a data center's Patroni cluster: one port for the leader, one for the replicas. */
export const dbProxy = defineComponent<DbProxy>({
  kind: 'dbProxy',
  spec: dbProxySpec,
  tier: 'database',
  scope: 'dataCenter',
  stage: 40,
  addresses: (s) => [s.primary, s.replicas, s.stats],
  access: (s) => [
    { at: s.primary, guard: 'password' },
    { at: s.replicas, guard: 'password' },
    { at: s.stats, guard: 'read-only' },
  ],
  address: (s) => `${hostPort(s.primary)},${s.replicas.port}`,
  async start(s, ctx) {
    const started = await startHaproxy(s.name, dbProxyConfig(s, nodesOf(ctx)), ctx.runDir, s.primary);
    if (!ctx.restarting) {
      await waitUntil(
        () =>
          ensureAppDatabase(
            { ...s.primary, password: ctx.state.secrets.superuser },
            { user: appUser, password: ctx.state.secrets.app, database: appDatabase },
          ).then(() => true),
        30_000,
        'the primary through the database proxy',
      );
    }
    return started;
  },
  health: async (s) => ({ ok: await tcpOpen(s.primary.host, s.primary.port), role: 'database proxy' }),
  scrape: (s) => ({ job: 'haproxy', target: hostPort(s.stats) }),
  provides: ([s], ctx) =>
    s
      ? {
          db: 'postgres',
          databaseUrl: appDatabaseUrl(s.primary, ctx.state.secrets.app),
          patroniUrls: nodesOf(ctx)
            .map((n) => `http://${hostPort(n.rest)}`)
            .join(','),
        }
      : {},
});
