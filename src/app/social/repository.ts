import type { Db, QueryBuilder, ShardDb } from '../../ports/db.ts';
import { fanOut } from '../../ports/db.ts';

type Edge =
  | { kind: 'follow'; followerId: string; followeeId: string }
  | { kind: 'like'; userId: string; photoId: string };

const bumpFollowers = (trx: QueryBuilder, userId: string, by: 1 | -1) =>
  trx
    .updateTable('users')
    .set((eb) => ({ follower_count: eb('follower_count', '+', by) }))
    .where('id', '=', userId)
    .execute();

const bumpLikes = (trx: QueryBuilder, photoId: string, by: 1 | -1) =>
  trx
    .updateTable('photos')
    .set((eb) => ({ like_count: eb('like_count', '+', by) }))
    .where('id', '=', photoId)
    .execute();

const changed = (r: { numInsertedOrUpdatedRows?: bigint } | { numDeletedRows: bigint }) =>
  Number('numDeletedRows' in r ? r.numDeletedRows : (r.numInsertedOrUpdatedRows ?? 0)) === 1;

/**
 * Follows and likes, sharded by user. An edge is written on the actor's
 * shard (`follows`, `likes`: the source of truth) and copied to the other
 * end's (`followers` with the follower count; `photo_likes` with the like
 * count). When both ends share a database (always, unsharded) both are one
 * transaction. Across shards, the edge and a row of `edge_outbox` are one
 * transaction on the actor's shard, then the copy is made to match the edge
 * (not the operation: a follow and an unfollow applied out of order still end
 * as the edge is), under a lock on the other end's row, so two such syncs of
 * one pair run one after the other; then the outbox row goes. A crash or an
 * unreachable shard between the two leaves the outbox row, and `settle`
 * finishes it later. As TAO writes an inverse edge: the write is acknowledged
 * once the actor's shard has it.
 */
export function createSocialRepository(db: Db, opts: { onSyncError?: (err: unknown, edge: Edge) => void } = {}) {
  const sourceOf = (e: Edge) => db.forKey(e.kind === 'follow' ? e.followerId : e.userId);
  const targetOf = (e: Edge) => db.forKey(e.kind === 'follow' ? e.followeeId : e.photoId);

  /** Whether the edge exists on the actor's shard (read in `trx` when the two ends share it). */
  const edgeExists = async (q: QueryBuilder, e: Edge) =>
    e.kind === 'follow'
      ? (await q
          .selectFrom('follows')
          .select('follower_id')
          .where('follower_id', '=', e.followerId)
          .where('followee_id', '=', e.followeeId)
          .executeTakeFirst()) !== undefined
      : (await q
          .selectFrom('likes')
          .select('user_id')
          .where('user_id', '=', e.userId)
          .where('photo_id', '=', e.photoId)
          .executeTakeFirst()) !== undefined;

  /** Makes the copy in `trx` (the other end's shard) match `exists`; true when it changed. */
  const copyEdge = async (trx: QueryBuilder, e: Edge, exists: boolean): Promise<boolean> => {
    if (e.kind === 'follow') {
      const r = exists
        ? await trx
            .insertInto('followers')
            .values({ followee_id: e.followeeId, follower_id: e.followerId })
            .onConflict((oc) => oc.doNothing())
            .executeTakeFirst()
        : await trx
            .deleteFrom('followers')
            .where('followee_id', '=', e.followeeId)
            .where('follower_id', '=', e.followerId)
            .executeTakeFirst();
      if (!changed(r)) return false;
      await bumpFollowers(trx, e.followeeId, exists ? 1 : -1);
      return true;
    }
    const r = exists
      ? await trx
          .insertInto('photo_likes')
          .values({ photo_id: e.photoId, user_id: e.userId })
          .onConflict((oc) => oc.doNothing())
          .executeTakeFirst()
      : await trx
          .deleteFrom('photo_likes')
          .where('photo_id', '=', e.photoId)
          .where('user_id', '=', e.userId)
          .executeTakeFirst();
    if (!changed(r)) return false;
    await bumpLikes(trx, e.photoId, exists ? 1 : -1);
    return true;
  };

  /**
   * Locks the other end's row (the followee, the photo) as its count's update
   * would (FOR NO KEY UPDATE: the foreign-key checks of other edges, KEY
   * SHARE, pass it, so two users following each other do not deadlock);
   * false when it is gone.
   */
  const lockTarget = async (trx: QueryBuilder, e: Edge) =>
    e.kind === 'follow'
      ? (await trx
          .selectFrom('users')
          .select('id')
          .where('id', '=', e.followeeId)
          .forNoKeyUpdate()
          .executeTakeFirst()) !== undefined
      : (await trx
          .selectFrom('photos')
          .select('id')
          .where('id', '=', e.photoId)
          .forNoKeyUpdate()
          .executeTakeFirst()) !== undefined;

  const removeEdge = (q: QueryBuilder, e: Edge) =>
    e.kind === 'follow'
      ? q
          .deleteFrom('follows')
          .where('follower_id', '=', e.followerId)
          .where('followee_id', '=', e.followeeId)
          .execute()
      : q.deleteFrom('likes').where('user_id', '=', e.userId).where('photo_id', '=', e.photoId).execute();

  /**
   * Across shards: the copy made to match the edge as it is now. The lock on
   * the other end comes first and the edge is read under it, so of two syncs
   * of one pair the later reads the later state. When the other end is gone
   * (a deleted photo), the edge goes too.
   */
  const sync = async (e: Edge): Promise<void> => {
    const source = sourceOf(e);
    await targetOf(e).transaction(async (trx) => {
      if (!(await lockTarget(trx, e))) {
        await removeEdge(source.primary, e);
        return;
      }
      await copyEdge(trx, e, await edgeExists(source.primary, e));
    });
  };

  const outboxRow = (e: Edge) =>
    e.kind === 'follow'
      ? { kind: 'follow' as const, source_id: e.followerId, target_id: e.followeeId }
      : { kind: 'like' as const, source_id: e.userId, target_id: e.photoId };
  const edgeOf = (r: { kind: string; source_id: string; target_id: string }): Edge =>
    r.kind === 'follow'
      ? { kind: 'follow', followerId: r.source_id, followeeId: r.target_id }
      : { kind: 'like', userId: r.source_id, photoId: r.target_id };

  /** The copy, then the outbox row; a failure leaves the row for `settle`. */
  const finish = async (source: ShardDb, e: Edge, outboxId: string) => {
    try {
      await sync(e);
      await source.primary.deleteFrom('edge_outbox').where('id', '=', outboxId).execute();
    } catch (err) {
      opts.onSyncError?.(err, e);
    }
  };

  /**
   * Writes the edge (`add` true) or takes it away; true when that changed it.
   * `'gone'` when the other end does not exist (a deleted photo, say).
   */
  const write = async (e: Edge, add: boolean): Promise<boolean | 'gone'> => {
    const source = sourceOf(e);
    const target = targetOf(e);
    const change = async (trx: QueryBuilder) => {
      const r = add
        ? e.kind === 'follow'
          ? await trx
              .insertInto('follows')
              .values({ follower_id: e.followerId, followee_id: e.followeeId })
              .onConflict((oc) => oc.doNothing())
              .executeTakeFirst()
          : await trx
              .insertInto('likes')
              .values({ user_id: e.userId, photo_id: e.photoId })
              .onConflict((oc) => oc.doNothing())
              .executeTakeFirst()
        : e.kind === 'follow'
          ? await trx
              .deleteFrom('follows')
              .where('follower_id', '=', e.followerId)
              .where('followee_id', '=', e.followeeId)
              .executeTakeFirst()
          : await trx
              .deleteFrom('likes')
              .where('user_id', '=', e.userId)
              .where('photo_id', '=', e.photoId)
              .executeTakeFirst();
      return changed(r);
    };
    if (source === target) {
      return source.transaction(async (trx) => {
        if (!(await lockTarget(trx, e))) return 'gone';
        const done = await change(trx);
        if (done) await copyEdge(trx, e, add);
        return done;
      });
    }
    const written = await source.transaction(async (trx) => {
      const done = await change(trx);
      if (!done) return undefined;
      const row = await trx.insertInto('edge_outbox').values(outboxRow(e)).returning('id').executeTakeFirstOrThrow();
      return String(row.id);
    });
    if (written === undefined) return false;
    await finish(source, e, written);
    return true;
  };

  return {
    /** True when the follow is new. The followee's follower count moves with its copy. */
    follow: async (followerId: string, followeeId: string): Promise<boolean> =>
      (await write({ kind: 'follow', followerId, followeeId }, true)) === true,
    /** True when there was a follow to remove. */
    unfollow: async (followerId: string, followeeId: string): Promise<boolean> =>
      (await write({ kind: 'follow', followerId, followeeId }, false)) === true,
    /**
     * True when the like is new, false when it was there; 'gone' when the photo
     * was deleted meanwhile. The photo's like count moves with its copy.
     */
    like: (userId: string, photoId: string): Promise<boolean | 'gone'> =>
      write({ kind: 'like', userId, photoId }, true),
    async unlike(userId: string, photoId: string): Promise<void> {
      await write({ kind: 'like', userId, photoId }, false);
    },

    /**
     * Finishes what the outbox holds (rows older than `olderThanMs`, so those
     * a request is finishing now are left to it), at most `limit` per shard:
     * how many it settled.
     */
    async settle(olderThanMs = 5000, limit = 100): Promise<number> {
      const counts = await fanOut(db, async (shard) => {
        const rows = await shard.primary
          .selectFrom('edge_outbox')
          .select(['id', 'kind', 'source_id', 'target_id'])
          .where('created_at', '<', new Date(Date.now() - olderThanMs))
          .orderBy('id')
          .limit(limit)
          .execute();
        let n = 0;
        for (const r of rows) {
          const e = edgeOf(r);
          try {
            await sync(e);
            await shard.primary.deleteFrom('edge_outbox').where('id', '=', r.id).execute();
            n++;
          } catch (err) {
            // The other end's shard cannot answer now: the row waits for the next round.
            opts.onSyncError?.(err, e);
          }
        }
        return n;
      });
      return counts.reduce((a, b) => a + b, 0);
    },

    /** The ids of everyone who follows `followeeId` (a fan-out's targets), from the primary of the followee's shard. */
    async followerIds(followeeId: string): Promise<string[]> {
      const rows = await db
        .forKey(followeeId)
        .primary.selectFrom('followers')
        .select('follower_id')
        .where('followee_id', '=', followeeId)
        .execute();
      return rows.map((r) => r.follower_id);
    },
    /** Accounts with more than `threshold` followers: their photos are merged into feeds when read, not pushed. */
    async popular(threshold: number): Promise<string[]> {
      const perShard = await fanOut(db, (shard) =>
        shard
          .reader()
          .selectFrom('users')
          .select(['id', 'follower_count'])
          .where('follower_count', '>', threshold)
          .orderBy('follower_count', 'desc')
          .limit(10_000)
          .execute(),
      );
      return perShard
        .flat()
        .sort((a, b) => b.follower_count - a.follower_count)
        .slice(0, 10_000)
        .map((r) => r.id);
    },
    /** The ids of everyone `followerId` follows. */
    async followingIds(followerId: string): Promise<Set<string>> {
      const rows = await db
        .forKey(followerId)
        .reader()
        .selectFrom('follows')
        .select('followee_id')
        .where('follower_id', '=', followerId)
        .execute();
      return new Set(rows.map((r) => r.followee_id));
    },
    async isFollowing(followerId: string, followeeId: string): Promise<boolean> {
      return edgeExists(db.forKey(followerId).reader(), { kind: 'follow', followerId, followeeId });
    },
  };
}

export type SocialRepository = ReturnType<typeof createSocialRepository>;
