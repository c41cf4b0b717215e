import { EtcdClient, parseShardMap } from '../../../platform/db/etcd-map.ts';
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
