import { createHash } from 'node:crypto';

/**
 * Logical shards: a fixed number at every stage, as Instagram's and Notion's
 * are (far more than physical clusters, so a rebalance moves whole logical
 * shards and never re-keys a row). 64 is one base64url digit: the first
 * character of every user and photo id names its logical shard, so any id
 * routes without a lookup. 64 divides over 2, 4, 8, 16 or 32 clusters, and
 * over 3 as 21/21/22. Unsharded topologies map all 64 to their one database.
 */
export const logicalShards = 64;

/** The base64url digits, in order: digit k is logical shard k. */
const digits = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The logical shard an id carries (its first character); -1 for a string that is not one of our ids. */
export function shardOfId(id: string): number {
  return id.length > 0 ? digits.indexOf(id[0] as string) : -1;
}

/** The first character of an id on logical shard `shard`. */
export function shardDigit(shard: number): string {
  const d = digits[shard];
  if (d === undefined || !Number.isInteger(shard)) throw new RangeError(`no logical shard ${shard}`);
  return d;
}

/**
 * A user's logical shard, from their name: the directory from usernames to
 * shards is this function (the first byte of SHA-256 of the name, mod 64),
 * so a name is unique across shards by a unique index on its own shard,
 * log-in by name finds the shard with no lookup, and a sign-up is one local
 * transaction. The user's id carries the same shard.
 */
export function shardOfUsername(username: string): number {
  return (createHash('sha256').update(username).digest()[0] as number) % logicalShards;
}

/**
 * Where each logical shard lives: `clusters[k]` is the name of the physical
 * cluster (a Patroni cluster) that holds logical shard k, and `version` grows
 * by one with every change. One authoritative copy exists (etcd, in sharded
 * topologies); every process watches it.
 */
export interface ShardMap {
  version: number;
  clusters: string[];
}

/** The schema of logical shard k on whichever cluster holds it. */
export const shardSchema = (shard: number): string => `shard_${String(shard).padStart(2, '0')}`;

/** The first map: the logical shards dealt out over `clusters` in contiguous, near-equal ranges. */
export function initialShardMap(clusters: string[]): ShardMap {
  if (clusters.length === 0) throw new Error('a shard map needs a cluster');
  return {
    version: 1,
    clusters: Array.from(
      { length: logicalShards },
      (_, k) => clusters[Math.floor((k * clusters.length) / logicalShards)] as string,
    ),
  };
}

/**
 * The moves that even out the logical shards over `clusters` (a cluster
 * added, or one to be emptied left out), moving as few as can be: each
 * cluster ends with ⌊64/M⌋ or ⌈64/M⌉, and only shards of clusters above
 * their share move, to clusters below it. Adding a third cluster to two
 * moves 21 of 64 (a third), not all. In shard order, so a plan is the same
 * every time it is made from the same map.
 */
export function rebalancePlan(map: ShardMap, clusters: string[]): { shard: number; from: string; to: string }[] {
  if (clusters.length === 0) throw new Error('no cluster to place shards on');
  const held = new Map(clusters.map((c) => [c, [] as number[]]));
  const homeless: number[] = [];
  map.clusters.forEach((c, k) => {
    const list = held.get(c);
    if (list) list.push(k);
    else homeless.push(k);
  });
  // The larger shares go to the clusters that hold the most now, so fewer shards move.
  const order = [...clusters].sort((a, b) => (held.get(b)?.length ?? 0) - (held.get(a)?.length ?? 0));
  const base = Math.floor(logicalShards / clusters.length);
  const extra = logicalShards % clusters.length;
  const share = new Map(order.map((c, i) => [c, base + (i < extra ? 1 : 0)]));
  const leaving: number[] = [...homeless];
  for (const c of clusters) {
    const list = held.get(c) ?? [];
    const over = list.length - (share.get(c) ?? 0);
    if (over > 0) leaving.push(...list.slice(list.length - over));
  }
  leaving.sort((a, b) => a - b);
  const moves: { shard: number; from: string; to: string }[] = [];
  for (const c of clusters) {
    let room = (share.get(c) ?? 0) - (held.get(c)?.length ?? 0);
    while (room-- > 0) {
      const shard = leaving.shift();
      if (shard === undefined) break;
      moves.push({ shard, from: map.clusters[shard] as string, to: c });
    }
  }
  return moves.sort((a, b) => a.shard - b.shard);
}
