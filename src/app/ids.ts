import { randomBytes } from 'node:crypto';
import { shardDigit } from '../ports/shards.ts';

/**
 * An id on logical shard `shard`: its digit, then 90 random bits, URL-safe,
 * 16 characters in all. A user's id carries the user's shard; a photo's
 * carries its owner's, so a photo routes to where its owner's rows are.
 */
export function newId(shard: number): string {
  return shardDigit(shard) + randomBytes(12).toString('base64url').slice(1);
}

export const idPattern = /^[A-Za-z0-9_-]{16}$/;
