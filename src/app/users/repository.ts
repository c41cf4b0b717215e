import { sql } from 'kysely';
import type { Db } from '../../ports/db.ts';

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

export function createUserRepository(db: Db) {
  return {
    async create(user: { id: string; username: string; passwordHash: string }): Promise<boolean> {
      const result = await db.primary
        .insertInto('users')
        .values({ id: user.id, username: user.username, password_hash: user.passwordHash })
        .onConflict((oc) => oc.column('username').doNothing())
        .executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
    },

    async getByUsername(username: string, fromPrimary = false): Promise<UserRow | undefined> {
      const row = await (fromPrimary ? db.primary : db.reader())
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

    /** Usernames that start with `prefix`, in order, with their follower counts (a range scan of the username index). */
    async searchByPrefix(prefix: string, limit: number): Promise<(PersonRow & { id: string })[]> {
      return (
        db
          .reader()
          .selectFrom('users as u')
          .select((eb) => [
            'u.id',
            'u.username',
            eb
              .selectFrom('follows')
              .select(eb.fn.countAll<string>().as('n'))
              .whereRef('followee_id', '=', 'u.id')
              .as('followerCount'),
          ])
          // '~' sorts after every character a username may hold (a-z, 0-9, _).
          .where('u.username', '>=', prefix)
          .where('u.username', '<', `${prefix}~`)
          .orderBy('u.username')
          .limit(limit)
          .execute()
          .then((rows) =>
            rows.map((r) => ({ id: r.id, username: r.username, followerCount: Number(r.followerCount ?? 0) })),
          )
      );
    },

    /**
     * Accounts active lately (the daily-active days, newest first), then the
     * newest accounts: suggestions for a site where nobody follows anyone yet.
     */
    async recentlyActive(limit: number): Promise<(PersonRow & { id: string })[]> {
      const active = await db
        .reader()
        .selectFrom('daily_active_users as d')
        .innerJoin('users as u', 'u.id', 'd.user_id')
        .select((eb) => ['u.id', 'u.username', 'u.follower_count', eb.fn.max('d.day').as('lastDay')])
        .where('d.day', '>=', sql<string>`current_date - 30`)
        .groupBy(['u.id', 'u.username', 'u.follower_count'])
        .orderBy('lastDay', 'desc')
        .orderBy('u.username')
        .limit(limit)
        .execute();
      const newest =
        active.length >= limit
          ? []
          : await db
              .reader()
              .selectFrom('users')
              .select(['id', 'username', 'follower_count'])
              .orderBy('created_at', 'desc')
              .limit(limit)
              .execute();
      const seen = new Set<string>();
      return [...active, ...newest]
        .filter((r) => !seen.has(r.id) && seen.add(r.id))
        .slice(0, limit)
        .map((r) => ({ id: r.id, username: r.username, followerCount: Number(r.follower_count) }));
    },

    /** The most-followed accounts, most followers first. */
    async mostFollowed(limit: number): Promise<(PersonRow & { id: string })[]> {
      const rows = await db
        .reader()
        .selectFrom('follows as f')
        .innerJoin('users as u', 'u.id', 'f.followee_id')
        .select((eb) => ['u.id', 'u.username', eb.fn.countAll<string>().as('followerCount')])
        .groupBy(['u.id', 'u.username'])
        .orderBy('followerCount', 'desc')
        .orderBy('u.username')
        .limit(limit)
        .execute();
      return rows.map((r) => ({ id: r.id, username: r.username, followerCount: Number(r.followerCount) }));
    },

    /** Sets an account's role; false when there is no such account. */
    async setRole(username: string, role: 'member' | 'admin'): Promise<boolean> {
      const result = await db.primary
        .updateTable('users')
        .set({ role })
        .where('username', '=', username)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    async admins(): Promise<string[]> {
      const rows = await db.primary
        .selectFrom('users')
        .select('username')
        .where('role', '=', 'admin')
        .orderBy('username')
        .execute();
      return rows.map((r) => r.username);
    },

    /** Read on the primary: a role just granted or revoked counts at once. */
    async isAdmin(id: string): Promise<boolean> {
      const row = await db.primary.selectFrom('users').select('role').where('id', '=', id).executeTakeFirst();
      return row?.role === 'admin';
    },

    async get(id: string): Promise<{ id: string; username: string } | undefined> {
      return db.reader().selectFrom('users').select(['id', 'username']).where('id', '=', id).executeTakeFirst();
    },

    async getProfile(username: string, fromPrimary = false): Promise<ProfileRow | undefined> {
      const row = await (fromPrimary ? db.primary : db.reader())
        .selectFrom('users as u')
        .select((eb) => [
          'u.id',
          'u.username',
          'u.created_at',
          eb
            .selectFrom('follows')
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
