import type { Db, QueryBuilder } from '../../ports/db.ts';

/** SQLSTATE of a row that refers to one that no longer exists. */
const foreignKeyViolation = '23503';

const bumpFollowers = (trx: QueryBuilder, userId: string, by: 1 | -1) =>
  trx
    .updateTable('users')
    .set((eb) => ({ follower_count: eb('follower_count', '+', by) }))
    .where('id', '=', userId)
    .execute();

export function createSocialRepository(db: Db) {
  return {
    /** True when the follow is new. The followee's follower count moves in the same transaction. */
    async follow(followerId: string, followeeId: string): Promise<boolean> {
      return db.transaction(async (trx) => {
        const result = await trx
          .insertInto('follows')
          .values({ follower_id: followerId, followee_id: followeeId })
          .onConflict((oc) => oc.doNothing())
          .executeTakeFirst();
        const added = Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
        if (added) await bumpFollowers(trx, followeeId, 1);
        return added;
      });
    },
    /** True when there was a follow to remove. */
    async unfollow(followerId: string, followeeId: string): Promise<boolean> {
      return db.transaction(async (trx) => {
        const result = await trx
          .deleteFrom('follows')
          .where('follower_id', '=', followerId)
          .where('followee_id', '=', followeeId)
          .executeTakeFirst();
        const removed = Number(result.numDeletedRows) === 1;
        if (removed) await bumpFollowers(trx, followeeId, -1);
        return removed;
      });
    },
    /** The ids of everyone who follows `followeeId` (a fan-out's targets), from the primary. */
    async followerIds(followeeId: string): Promise<string[]> {
      const rows = await db.primary
        .selectFrom('follows')
        .select('follower_id')
        .where('followee_id', '=', followeeId)
        .execute();
      return rows.map((r) => r.follower_id);
    },
    /** Accounts with more than `threshold` followers: their photos are merged into feeds when read, not pushed. */
    async popular(threshold: number): Promise<string[]> {
      const rows = await db
        .reader()
        .selectFrom('users')
        .select('id')
        .where('follower_count', '>', threshold)
        .orderBy('follower_count', 'desc')
        .limit(10_000)
        .execute();
      return rows.map((r) => r.id);
    },
    /** The ids of everyone `followerId` follows. */
    async followingIds(followerId: string): Promise<Set<string>> {
      const rows = await db
        .reader()
        .selectFrom('follows')
        .select('followee_id')
        .where('follower_id', '=', followerId)
        .execute();
      return new Set(rows.map((r) => r.followee_id));
    },
    async isFollowing(followerId: string, followeeId: string): Promise<boolean> {
      const row = await db
        .reader()
        .selectFrom('follows')
        .select('follower_id')
        .where('follower_id', '=', followerId)
        .where('followee_id', '=', followeeId)
        .executeTakeFirst();
      return row !== undefined;
    },
    /**
     * True when the like is new, false when it was there; 'gone' when the photo
     * was deleted meanwhile. The photo's like count moves in the same transaction.
     */
    async like(userId: string, photoId: string): Promise<boolean | 'gone'> {
      try {
        return await db.transaction(async (trx) => {
          const result = await trx
            .insertInto('likes')
            .values({ user_id: userId, photo_id: photoId })
            .onConflict((oc) => oc.doNothing())
            .executeTakeFirst();
          const added = Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
          if (added) {
            await trx
              .updateTable('photos')
              .set((eb) => ({ like_count: eb('like_count', '+', 1) }))
              .where('id', '=', photoId)
              .execute();
          }
          return added;
        });
      } catch (err) {
        if ((err as { code?: string }).code === foreignKeyViolation) return 'gone';
        throw err;
      }
    },
    async unlike(userId: string, photoId: string): Promise<void> {
      await db.transaction(async (trx) => {
        const removed = await trx
          .deleteFrom('likes')
          .where('user_id', '=', userId)
          .where('photo_id', '=', photoId)
          .executeTakeFirst();
        if (Number(removed.numDeletedRows) === 1) {
          await trx
            .updateTable('photos')
            .set((eb) => ({ like_count: eb('like_count', '-', 1) }))
            .where('id', '=', photoId)
            .execute();
        }
      });
    },
  };
}

export type SocialRepository = ReturnType<typeof createSocialRepository>;
