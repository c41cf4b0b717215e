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
