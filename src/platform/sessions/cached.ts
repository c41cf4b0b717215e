import type { Cache } from '../../ports/cache.ts';
import type { Session, SessionStore } from '../../ports/sessions.ts';
import { sessionDigest } from './ids.ts';

interface CachedSession {
  userId: string;
  data: Record<string, string>;
  expiresAt: string;
}

/**
 * A short-lived cache in front of a session store, so an authenticated request
 * does not read the store each time. Keys are the id's digest, never the id.
 * Updates and log-outs delete the entry (and the two-level cache tells every
 * web server's L1), so a session ended on one server is ended everywhere; a
 * fill holds a lease, so one racing the log-out cannot store it again. At
 * worst a server that missed the message serves it for `ttlSeconds`.
 */
export function withSessionCache(store: SessionStore, cache: Cache, ttlSeconds = 5): SessionStore {
  const key = (id: string) => `session:${sessionDigest(id)}`;
  return {
    create: (userId, data) => store.create(userId, data),
    async get(id) {
      if (!id) return null;
      const hit = await cache.get<CachedSession>(key(id));
      if (hit) {
        const expiresAt = new Date(hit.expiresAt);
        return expiresAt > new Date()
          ? ({ id, userId: hit.userId, data: hit.data, expiresAt } satisfies Session)
          : null;
      }
      // A log-out while the store answers wins: the lease keeps the ended session out of the cache.
      const lease = await cache.lease(key(id));
      const session = await store.get(id);
      if (session) {
        await cache.set(
          key(id),
          { userId: session.userId, data: session.data, expiresAt: session.expiresAt.toISOString() },
          ttlSeconds,
          lease,
        );
      }
      return session;
    },
    async update(id, data) {
      await store.update(id, data);
      await cache.delete(key(id));
    },
    async delete(id) {
      await store.delete(id);
      await cache.delete(key(id));
    },
    close: () => store.close(),
  };
}
