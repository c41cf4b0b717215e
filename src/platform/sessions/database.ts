import { type Db, preferPrimary, primaryPatienceMs, type QueryBuilder } from '../../ports/db.ts';
import type { Session, SessionStore } from '../../ports/sessions.ts';
import { isUnavailable } from '../db/errors.ts';
import { newSessionId, sessionDigest } from './ids.ts';

/** Sessions in the relational store: they survive restarts and are shared by every web server. */
export function createDatabaseSessionStore(
  db: Db,
  ttlSeconds: number,
  now = () => new Date(),
  /** How long a session's lookup waits for the primary before it asks a replica too (ms). */
  hedgeMs = primaryPatienceMs,
): SessionStore {
  const expiry = () => new Date(now().getTime() + ttlSeconds * 1000);
  return {
    async create(userId, data = {}) {
      const id = newSessionId();
      const expiresAt = expiry();
      await db.primary
        .insertInto('sessions')
        .values({
          id_hash: sessionDigest(id),
          user_id: userId,
          data: JSON.stringify(data) as never,
          expires_at: expiresAt,
        })
        .execute();
      // Expired rows are removed lazily, a few at a time, by the writers.
      await db.primary.deleteFrom('sessions').where('expires_at', '<', now()).execute();
      return { id, userId, data: { ...data }, expiresAt };
    },
    async get(id) {
      if (!id) return null;
      const find = (q: QueryBuilder) =>
        q
          .selectFrom('sessions')
          .select(['user_id', 'data', 'expires_at'])
          .where('id_hash', '=', sessionDigest(id))
          .where('expires_at', '>', now())
          .executeTakeFirst();
      // The primary has every session, the newest too, and is asked first. One that has not answered within
      // `hedgeMs` (it waits for a failover to end, or in a second data center the primary one is lost) is
      // asked of a replica too, whose copy keeps logged-in users reading, at most the replica's lag old (a
      // session made in that lag is not found there: its user logs in again once writes are back).
      const { value: row } = await preferPrimary(
        () => find(db.primary),
        () => find(db.reader()),
        { afterMs: hedgeMs, usable: (r) => r !== undefined, unavailable: isUnavailable },
      );
      if (!row) return null;
      return {
        id,
        userId: row.user_id,
        data: row.data,
        expiresAt: new Date(row.expires_at),
      } satisfies Session;
    },
    async update(id, data) {
      await db.primary
        .updateTable('sessions')
        .set({ data: JSON.stringify(data) as never })
        .where('id_hash', '=', sessionDigest(id))
        .execute();
    },
    async delete(id) {
      await db.primary.deleteFrom('sessions').where('id_hash', '=', sessionDigest(id)).execute();
    },
    async close() {},
  };
}
