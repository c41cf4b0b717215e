import { sql } from 'kysely';
import { type Db, fanOut } from '../../ports/db.ts';

export interface UserRow {
  id: string;
  username: string;
  passwordHash: string;
  createdAt: Date;
}

export interface ProfileRow {
  id: string;
  username: string;
  createdAt: Date;
  followerCount: number;
  followingCount: number;
  photoCount: number;
}

/** Someone to follow: a username and how many follow them. */
export interface PersonRow {
  username: string;
  followerCount: number;
}

const person = (r: { id: string; username: string; follower_count: number }) => ({
  id: r.id,
  username: r.username,
  followerCount: Number(r.follower_count),
});

/** A day as the database returns it (a date, or its text), as a number to sort by. */
const dayOf = (d: unknown) => new Date(d as string | Date).getTime();

export function createUserRepository(db: Db) {
  return {
    async create(user: { id: string; username: string; passwordHash: string }): Promise<boolean> {
      const result = await db
        .forKey(user.id)
        .primary.insertInto('users')
        .values({ id: user.id, username: user.username, password_hash: user.passwordHash })
        .onConflict((oc) => oc.column('username').doNothing())
        .executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
    },

    async getByUsername(username: string, fromPrimary = false): Promise<UserRow | undefined> {
      const shard = db.forUsername(username);
      const row = await (fromPrimary ? shard.primary : shard.reader())
        .selectFrom('users')
        .select(['id', 'username', 'password_hash', 'created_at'])
        .where('username', '=', username)
        .executeTakeFirst();
      return (
        row && {
          id: row.id,
          username: row.username,
          passwordHash: row.password_hash,
          createdAt: row.created_at,
        }
      );
    },

    /**
     * Usernames that start with `prefix`, in order, with their follower counts:
     * a range scan of the username index on every shard, merged.
     */
    async searchByPrefix(prefix: string, limit: number): Promise<(PersonRow & { id: string })[]> {
      const perShard = await fanOut(db, (shard) =>
        shard
          .reader()
          .selectFrom('users')
          .select(['id', 'username', 'follower_count'])
          // '~' sorts after every character a username may hold (a-z, 0-9, _).
          .where('username', '>=', prefix)
          .where('username', '<', `${prefix}~`)
          .orderBy('username')
          .limit(limit)
          .execute(),
      );
      return perShard
        .flat()
        .sort((a, b) => (a.username < b.username ? -1 : a.username > b.username ? 1 : 0))
        .slice(0, limit)
        .map(person);
    },

    /**
     * Accounts active lately (the daily-active days, newest first), then the
     * newest accounts: suggestions for a site where nobody follows anyone yet.
     * Each shard answers for its users; the answers are merged.
     */
    async recentlyActive(limit: number): Promise<(PersonRow & { id: string })[]> {
      const active = (
        await fanOut(db, (shard) =>
          shard
            .reader()
            .selectFrom('daily_active_users as d')
            .innerJoin('users as u', 'u.id', 'd.user_id')
            .select((eb) => ['u.id', 'u.username', 'u.follower_count', eb.fn.max('d.day').as('lastDay')])
            .where('d.day', '>=', sql<string>`current_date - 30`)
            .groupBy(['u.id', 'u.username', 'u.follower_count'])
            .orderBy('lastDay', 'desc')
            .orderBy('u.username')
            .limit(limit)
            .execute(),
        )
      )
        .flat()
        .sort((a, b) => dayOf(b.lastDay) - dayOf(a.lastDay) || (a.username < b.username ? -1 : 1));
      const newest =
        active.length >= limit
          ? []
          : (
              await fanOut(db, (shard) =>
                shard
                  .reader()
                  .selectFrom('users')
                  .select(['id', 'username', 'follower_count', 'created_at'])
                  .orderBy('created_at', 'desc')
                  .limit(limit)
                  .execute(),
              )
            )
              .flat()
              .sort((a, b) => new Date(b.created_at).getTime() - new Date(a.created_at).getTime());
      const seen = new Set<string>();
      return [...active, ...newest]
        .filter((r) => !seen.has(r.id) && seen.add(r.id))
        .slice(0, limit)
        .map(person);
    },

    /** The most-followed accounts, most followers first (the denormalised count, on every shard, merged). */
    async mostFollowed(limit: number): Promise<(PersonRow & { id: string })[]> {
      const perShard = await fanOut(db, (shard) =>
        shard
          .reader()
          .selectFrom('users')
          .select(['id', 'username', 'follower_count'])
          .where('follower_count', '>', 0)
          .orderBy('follower_count', 'desc')
          .orderBy('username')
          .limit(limit)
          .execute(),
      );
      return perShard
        .flat()
        .sort((a, b) => b.follower_count - a.follower_count || (a.username < b.username ? -1 : 1))
        .slice(0, limit)
        .map(person);
    },

    /** Sets an account's role; false when there is no such account. */
    async setRole(username: string, role: 'member' | 'admin'): Promise<boolean> {
      const result = await db
        .forUsername(username)
        .primary.updateTable('users')
        .set({ role })
        .where('username', '=', username)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    async admins(): Promise<string[]> {
      const perShard = await fanOut(db, (shard) =>
        shard.primary.selectFrom('users').select('username').where('role', '=', 'admin').execute(),
      );
      return perShard
        .flat()
        .map((r) => r.username)
        .sort();
    },

    /** Read on the primary: a role just granted or revoked counts at once. */
    async isAdmin(id: string): Promise<boolean> {
      const row = await db
        .forKey(id)
        .primary.selectFrom('users')
        .select('role')
        .where('id', '=', id)
        .executeTakeFirst();
      return row?.role === 'admin';
    },

    async get(id: string): Promise<{ id: string; username: string } | undefined> {
      return db
        .forKey(id)
        .reader()
        .selectFrom('users')
        .select(['id', 'username'])
        .where('id', '=', id)
        .executeTakeFirst();
    },

    async getProfile(username: string, fromPrimary = false): Promise<ProfileRow | undefined> {
      // Everything counted here is on the user's shard: who follows them is the copy in `followers`.
      const shard = db.forUsername(username);
      const row = await (fromPrimary ? shard.primary : shard.reader())
        .selectFrom('users as u')
        .select((eb) => [
          'u.id',
          'u.username',
          'u.created_at',
          eb
            .selectFrom('followers')
            .select(sql<number>`count(*)::int`.as('n'))
            .whereRef('followee_id', '=', 'u.id')
            .as('follower_count'),
          eb
            .selectFrom('follows')
            .select(sql<number>`count(*)::int`.as('n'))
            .whereRef('follower_id', '=', 'u.id')
            .as('following_count'),
          eb
            .selectFrom('photos')
            .select(sql<number>`count(*)::int`.as('n'))
            .whereRef('owner_id', '=', 'u.id')
            .where('status', '=', 'ready')
            .as('photo_count'),
        ])
        .where('u.username', '=', username)
        .executeTakeFirst();
      return (
        row && {
          id: row.id,
          username: row.username,
          createdAt: row.created_at,
          followerCount: row.follower_count ?? 0,
          followingCount: row.following_count ?? 0,
          photoCount: row.photo_count ?? 0,
        }
      );
    },
  };
}

export type UserRepository = ReturnType<typeof createUserRepository>;
