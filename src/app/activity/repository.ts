import { sql } from 'kysely';
import { type Db, fanOut, type ShardDb } from '../../ports/db.ts';

export interface Kpis {
  day: string;
  dailyActiveUsers: number;
  signups: number;
  uploads: number;
  likes: number;
}

export function createActivityRepository(db: Db) {
  const sum = async (each: (shard: ShardDb) => Promise<number>) => (await fanOut(db, each)).reduce((a, b) => a + b, 0);
  const count = (table: 'users' | 'photos' | 'likes', since: Date) =>
    sum((shard) =>
      shard.primary
        .selectFrom(table)
        .select(sql<number>`count(*)::int`.as('n'))
        .where('created_at', '>=', since)
        .executeTakeFirstOrThrow()
        .then((r) => r.n),
    );
  return {
    async markActive(day: string, userId: string): Promise<void> {
      await db
        .forKey(userId)
        .primary.insertInto('daily_active_users')
        .values({ day, user_id: userId })
        .onConflict((oc) => oc.doNothing())
        .execute();
    },
    /** Today's business KPIs, counted from the data itself on every shard (exact, whatever the number of web servers). */
    async kpis(day: string): Promise<Kpis> {
      const since = new Date(`${day}T00:00:00.000Z`);
      const [dau, signups, uploads, likes] = await Promise.all([
        // A user is on one shard only: the shards' counts add up to the exact number.
        sum((shard) =>
          shard.primary
            .selectFrom('daily_active_users')
            .select(sql<number>`count(*)::int`.as('n'))
            .where('day', '=', day)
            .executeTakeFirstOrThrow()
            .then((r) => r.n),
        ),
        count('users', since),
        count('photos', since),
        count('likes', since),
      ]);
      return { day, dailyActiveUsers: dau, signups, uploads, likes };
    },
  };
}

export type ActivityRepository = ReturnType<typeof createActivityRepository>;
