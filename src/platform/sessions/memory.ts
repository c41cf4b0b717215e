import type { Session, SessionStore } from '../../ports/sessions.ts';
import { newSessionId, sessionDigest } from './ids.ts';

/** Sessions in this process only: lost at restart. For tests and throwaway runs. */
export function createMemorySessionStore(ttlSeconds: number, now = () => new Date()): SessionStore {
  const sessions = new Map<string, { userId: string; data: Record<string, string>; expiresAt: Date }>();
  return {
    async create(userId, data = {}) {
      const id = newSessionId();
      const expiresAt = new Date(now().getTime() + ttlSeconds * 1000);
      sessions.set(sessionDigest(id), { userId, data: { ...data }, expiresAt });
      return { id, userId, data: { ...data }, expiresAt };
    },
    async get(id) {
      const digest = sessionDigest(id);
      const s = sessions.get(digest);
      if (!s) return null;
      if (s.expiresAt <= now()) {
        sessions.delete(digest);
        return null;
      }
      return { id, userId: s.userId, data: { ...s.data }, expiresAt: s.expiresAt } satisfies Session;
    },
    async update(id, data) {
      const s = sessions.get(sessionDigest(id));
      if (s) s.data = { ...data };
    },
    async delete(id) {
      sessions.delete(sessionDigest(id));
    },
    async close() {
      sessions.clear();
    },
  };
}
