import type { Db } from '../../ports/db.ts';
import type { Session, SessionStore } from '../../ports/sessions.ts';
import { newSessionId, sessionDigest } from './ids.ts';

/** Sessions in the relational store: they survive restarts and are shared by every web server. */
export function createDatabaseSessionStore(db: Db, ttlSeconds: number, now = () => new Date()): SessionStore {
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
      const row = await db.primary
        .selectFrom('sessions')
        .select(['user_id', 'data', 'expires_at'])
        .where('id_hash', '=', sessionDigest(id))
        .where('expires_at', '>', now())
        .executeTakeFirst();
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
