import { sql } from 'kysely';
import type { Db } from '../../ports/db.ts';
import type { RateCount, RateLimiter } from '../../ports/rate-limits.ts';

interface Row {
  count: number;
  window_ends: Date | string;
  last_hit: Date | string;
}

const toCount = (row: Row): RateCount => ({
  count: Number(row.count),
  resetAt: new Date(row.window_ends),
  lastHitAt: new Date(row.last_hit),
});

/**
 * Rate-limit counters in the relational store, on the primary: one atomic
 * upsert per event, so concurrent web servers never lose a count.
 */
export function createDatabaseRateLimiter(db: Db): RateLimiter {
  let hits = 0;
  return {
    async hit(key, windowMs) {
      const interval = `${Math.max(1, Math.round(windowMs))} milliseconds`;
      const result = await sql<Row>`
        INSERT INTO rate_limits AS r (key, count, window_ends, last_hit)
        VALUES (${key}, 1, now() + ${interval}::interval, now())
        ON CONFLICT (key) DO UPDATE SET
          count = CASE WHEN r.window_ends <= now() THEN 1 ELSE r.count + 1 END,
          window_ends = CASE WHEN r.window_ends <= now() THEN now() + ${interval}::interval ELSE r.window_ends END,
          last_hit = now()
        RETURNING count, window_ends, last_hit`.execute(db.primary);
      // Expired counters are removed now and then by the writers.
      if (++hits % 100 === 0)
        await db.primary.deleteFrom('rate_limits').where('window_ends', '<', new Date()).execute();
      const row = result.rows[0];
      if (!row) throw new Error('rate limit upsert returned no row');
      return toCount(row);
    },
    async peek(key) {
      const row = await db.primary
        .selectFrom('rate_limits')
        .select(['count', 'window_ends', 'last_hit'])
        .where('key', '=', key)
        .where('window_ends', '>', sql<Date>`now()`)
        .executeTakeFirst();
      return row ? toCount(row) : null;
    },
    async reset(key) {
      await db.primary.deleteFrom('rate_limits').where('key', '=', key).execute();
    },
  };
}
