import {
  EtcdClient,
  parseShardMap,
  type ShardClusterEndpoint,
  shardClustersKey,
} from '../../../platform/db/etcd-map.ts';
import { initialShardMap, type ShardMap } from '../../../ports/shards.ts';
import type { SpecOf } from '../../topology/schema.ts';

/** Where the shard map lives in a topology's etcd, and the read-only user the site reads it as. */
export const shardMapKey = '/scaleout/shardmap';
export const shardMapReader = 'scaleout-site';

const b64 = (s: string) => Buffer.from(s).toString('base64');
/** The end of the range of keys under `key` (etcd's prefix convention: the last byte plus one). */
const rangeEnd = (key: string) => {
  const bytes = Buffer.from(key);
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) + 1;
  return bytes.toString('base64');
};

export const etcdEndpoint = (etcd: SpecOf<'etcd'>) => `http://${etcd.client.host}:${etcd.client.port}`;

/** etcd as root, for the map's writers (`up`, `scaleout reshard`). */
export const rootEtcd = (etcd: SpecOf<'etcd'>, password: string) =>
  new EtcdClient({ endpoint: etcdEndpoint(etcd), user: 'root', password, key: shardMapKey });

/** Ignores etcd's "already exists" (a step done by an earlier `up`). */
const once = async (call: Promise<unknown>) => {
  try {
    await call;
  } catch (err) {
    if (!/already exists/i.test((err as Error).message)) throw err;
  }
};

/**
 * Sets up the shard map of a sharded topology, once: a role that may read
 * the map's key only and a user with it (the web servers' and workers'), and
 * the first map, the logical shards dealt out over `clusters` (kept as it is
 * when a map is there already: a restart never re-places a shard).
 */
export async function provisionShardMap(
  etcd: SpecOf<'etcd'>,
  secrets: { etcd: string; shardMap?: string },
  clusters: string[],
): Promise<ShardMap> {
  if (!secrets.shardMap) throw new Error('this run has no shard-map secret: start it again with this version');
  const root = rootEtcd(etcd, secrets.etcd);
  await once(root.call('/v3/auth/role/add', { name: 'shardmap-reader' }));
  await root.call('/v3/auth/role/grant', {
    name: 'shardmap-reader',
    perm: { permType: 'READ', key: b64(shardMapKey), range_end: rangeEnd(shardMapKey) },
  });
  await once(root.call('/v3/auth/user/add', { name: shardMapReader, password: secrets.shardMap }));
  await root.call('/v3/auth/user/grant', { user: shardMapReader, role: 'shardmap-reader' });
  const first = initialShardMap(clusters);
  await root.putIf(shardMapKey, JSON.stringify(first), '0');
  const stored = await root.get(shardMapKey);
  if (!stored) throw new Error('the shard map was not stored');
  return parseShardMap(stored.value);
}

/** The map as etcd holds it now, and its revision (for a compare-and-swap). */
export async function readShardMap(
  etcd: SpecOf<'etcd'>,
  password: string,
): Promise<{ map: ShardMap; revision: string } | undefined> {
  const kv = await rootEtcd(etcd, password).get(shardMapKey);
  return kv ? { map: parseShardMap(kv.value), revision: kv.modRevision } : undefined;
}

/** Writes `next` over the map at `revision`; false when another change came first. */
export async function writeShardMap(
  etcd: SpecOf<'etcd'>,
  password: string,
  next: ShardMap,
  revision: string,
): Promise<boolean> {
  return rootEtcd(etcd, password).putIf(shardMapKey, JSON.stringify(next), revision);
}

/**
 * Writes where every shard cluster is (its proxy, its Patroni nodes) beside
 * the map, where a running web server finds a cluster added after it started.
 */
export async function publishShardClusters(
  etcd: SpecOf<'etcd'>,
  password: string,
  clusters: Record<string, ShardClusterEndpoint>,
): Promise<void> {
  const root = rootEtcd(etcd, password);
  const key = shardClustersKey(shardMapKey);
  const before = await root.get(key);
  if (!(await root.putIf(key, JSON.stringify(clusters), before?.modRevision ?? '0'))) {
    throw new Error('the shard clusters changed while they were written: try again');
  }
}

/** Forgets a Patroni cluster's keys (an added cluster that failed to start: the next try bootstraps afresh). */
export async function forgetPatroniScope(etcd: SpecOf<'etcd'>, password: string, scope: string): Promise<void> {
  const prefix = `/service/${scope}/`;
  await rootEtcd(etcd, password).call('/v3/kv/deleterange', { key: b64(prefix), range_end: rangeEnd(prefix) });
}

/** Held while a logical shard moves: one move at a time per topology. */
export const moveLockKey = `${shardMapKey}/moving`;

/**
 * Takes the topology's move lock: a key under an etcd lease of 15 s that is
 * renewed every 5 s while the move runs, so a mover that dies (SIGKILL)
 * frees it within 15 s. Throws, naming the holder, when another move runs.
 */
export async function holdMoveLock(
  etcd: SpecOf<'etcd'>,
  password: string,
  what: { shard: number; to: string },
): Promise<{ release(): Promise<void> }> {
  const root = rootEtcd(etcd, password);
  const lease = await root.grantLease(15);
  const holder = JSON.stringify({ ...what, pid: process.pid, since: new Date().toISOString() });
  if (!(await root.createLeased(moveLockKey, holder, lease))) {
    await root.revokeLease(lease).catch(() => {});
    const now = await root.get(moveLockKey);
    throw new Error(`another move is under way (${now?.value ?? 'it just ended: try again'})`);
  }
  const timer = setInterval(() => root.renewLease(lease).catch(() => {}), 5000);
  timer.unref();
  return {
    async release() {
      clearInterval(timer);
      await root.revokeLease(lease).catch(() => {});
    },
  };
}
