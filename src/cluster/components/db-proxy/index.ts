import { z } from 'zod';
import { tcpOpen, waitUntil } from '../../process.ts';
import { address } from '../../topology/address.ts';
import { processesOf } from '../../topology/select.ts';
import { defineComponent, hostPort, type RunContext } from '../component.ts';
import { dbProxyConfig, startHaproxy } from '../load-balancer/haproxy.ts';
import { isStandbyCluster, waitForCluster } from '../patroni/cluster.ts';
import { clusterNodes } from '../patroni/index.ts';
import { appDatabase, appDatabaseUrl, appUser, ensureAppDatabase } from '../postgres/server.ts';
import { etcdEndpoint, provisionShardMap, publishShardClusters, shardMapKey, shardMapReader } from './shard-map.ts';

export const dbProxySpec = z.object({
  kind: z.literal('dbProxy'),
  name: z.string(),
  /** Routes to the Patroni leader. */
  primary: address,
  /** Round robin over streaming replicas. */
  replicas: address,
  stats: address,
  /**
   * Two data centers: this data center's own primary only (never routed
   * elsewhere), what the other data center's standby streams from and its
   * writes cross to; and an HTTP check that answers 200 while there is one.
   */
  localPrimary: address.optional(),
  primaryCheck: address.optional(),
  /**
   * Two data centers: the other's primary, through a delay proxy (`via`),
   * checked at its proxy's `check` (its primaryCheck): the write port's
   * backup, taken while no node of this data center is primary.
   */
  remotePrimary: z.object({ via: address, check: address }).optional(),
  /** The Patroni cluster behind it, when its data center has several (a shard cluster); absent: the one. */
  cluster: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,15}$/)
    .optional(),
});
type DbProxy = z.infer<typeof dbProxySpec>;

const nodesOf = (ctx: RunContext, s: DbProxy) => clusterNodes(ctx, s.cluster);
/** The REST APIs of the Patroni nodes behind a proxy (replica discovery). */
const restOf = (ctx: RunContext, s: DbProxy) => nodesOf(ctx, s).map((n) => `http://${hostPort(n.rest)}`);

/**
 * HAProxy in front of a data center's Patroni cluster: one port for the
 * leader, one for the replicas. With shard clusters, one per cluster; once
 * all are up, the shard map is set up in etcd, and the web servers get every
 * cluster and the map (SCALEOUT_SHARD_CLUSTERS, SCALEOUT_SHARD_MAP_*).
 */
export const dbProxy = defineComponent<DbProxy>({
  kind: 'dbProxy',
  spec: dbProxySpec,
  tier: 'database',
  scope: 'dataCenter',
  stage: 40,
  addresses: (s) => [
    s.primary,
    s.replicas,
    s.stats,
    ...(s.localPrimary ? [s.localPrimary] : []),
    ...(s.primaryCheck ? [s.primaryCheck] : []),
  ],
  access: (s) => [
    { at: s.primary, guard: 'password' },
    { at: s.replicas, guard: 'password' },
    { at: s.stats, guard: 'read-only' },
    ...(s.localPrimary ? [{ at: s.localPrimary, guard: 'password' as const }] : []),
    ...(s.primaryCheck ? [{ at: s.primaryCheck, guard: 'read-only' as const }] : []),
  ],
  address: (s) => `${hostPort(s.primary)},${s.replicas.port}`,
  async start(s, ctx) {
    const started = await startHaproxy(s.name, dbProxyConfig(s, nodesOf(ctx, s)), ctx.runDir, s.primary);
    // A standby cluster has no primary here: its database comes from the primary data center's, by replication.
    if (!ctx.restarting && !isStandbyCluster(nodesOf(ctx, s))) {
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
  async ready(specs, ctx) {
    // A standby cluster becomes whole once its source (the primary data center's proxy, started just before
    // this stage of this data center) is reachable: its standby leader's base backup waited for it.
    for (const s of specs) {
      const nodes = nodesOf(ctx, s);
      if (!isStandbyCluster(nodes)) continue;
      ctx.log(`  ${s.name}: waiting for the standby cluster to stream from the primary data center`);
      const leader = await waitForCluster(nodes, false, 180_000);
      ctx.log(`  ${s.name}: standby leader ${leader}`);
    }
    const clusters = shardClusters(specs);
    if (clusters.length === 0) return;
    const [etcd] = processesOf(ctx.topology, 'etcd', ctx.dataCenter ? { dataCenter: ctx.dataCenter } : undefined);
    if (!etcd) throw new Error('shard clusters need etcd for their map');
    const map = await provisionShardMap(etcd, ctx.state.secrets, clusters);
    // Every shard cluster of the scope (those started before these too), for the processes already running.
    const all = processesOf(ctx.topology, 'dbProxy', ctx.dataCenter ? { dataCenter: ctx.dataCenter } : undefined);
    await publishShardClusters(
      etcd,
      ctx.state.secrets.etcd,
      Object.fromEntries(
        all.flatMap((p) =>
          p.cluster ? [[p.cluster, { primary: hostPort(p.primary), rest: restOf(ctx, p) }] as const] : [],
        ),
      ),
    );
    ctx.log(
      `  shard map version ${map.version}: ${clusters.map((c) => `${c} ${map.clusters.filter((x) => x === c).length}`).join(', ')} logical shards`,
    );
  },
  health: async (s) => ({
    ok: await tcpOpen(s.primary.host, s.primary.port),
    role: 'database proxy',
    detail: s.cluster ? `cluster ${s.cluster}` : undefined,
    cluster: s.cluster,
  }),
  scrape: (s) => ({ job: 'haproxy', target: hostPort(s.stats) }),
  provides: (specs, ctx) => {
    const [s] = specs;
    if (!s) return {};
    const common = { db: 'postgres' as const, databaseUrl: appDatabaseUrl(s.primary, ctx.state.secrets.app) };
    if (shardClusters(specs).length === 0) return { ...common, patroniUrls: restOf(ctx, s).join(',') };
    const [etcd] = processesOf(ctx.topology, 'etcd', ctx.dataCenter ? { dataCenter: ctx.dataCenter } : undefined);
    return {
      ...common,
      shardClusters: specs
        .map((p) => `${p.cluster}|${appDatabaseUrl(p.primary, ctx.state.secrets.app)}|${restOf(ctx, p).join('+')}`)
        .join(','),
      shardMapEtcd: etcd ? etcdEndpoint(etcd) : undefined,
      shardMapKey,
      shardMapUser: shardMapReader,
      shardMapPassword: ctx.state.secrets.shardMap,
    };
  },
});

/** The shard clusters' names, when the proxies front several (sharded). */
const shardClusters = (specs: DbProxy[]) => (specs.some((s) => s.cluster) ? specs.map((s) => s.cluster as string) : []);
