import { type Cache, cached } from '../../ports/cache.ts';
import type { BusinessMetrics } from '../../ports/metrics.ts';
import type { Session, SessionStore } from '../../ports/sessions.ts';
import { conflict, notFound, unauthorized } from '../errors.ts';
import { newId } from '../ids.ts';
import { dummyHash, hashPassword, verifyPassword } from './password.ts';
import type { ProfileRow, UserRepository } from './repository.ts';

export const usernamePattern = /^[a-z0-9_]{3,30}$/;
export const passwordMinLength = 10;
export const passwordMaxLength = 200;

export const profileCacheKey = (username: string) => `profile:${username}`;

export interface CachedProfile extends Omit<ProfileRow, 'createdAt'> {
  createdAt: string;
}

export function createUserService(deps: {
  users: UserRepository;
  sessions: SessionStore;
  cache: Cache;
  metrics: BusinessMetrics;
}) {
  const { users, sessions, cache, metrics } = deps;
  return {
    async signUp(username: string, password: string): Promise<{ id: string; username: string }> {
      const id = newId();
      const created = await users.create({ id, username, passwordHash: await hashPassword(password) });
      if (!created) throw conflict('that username is taken');
      metrics.signup();
      return { id, username };
    },

    /** Checks the password and starts a new session; `previousSessionId` is ended (id rotation). */
    async logIn(username: string, password: string, previousSessionId?: string): Promise<Session> {
      const user = await users.getByUsername(username);
      const ok = await verifyPassword(password, user?.passwordHash ?? dummyHash);
      if (!user || !ok) throw unauthorized('wrong username or password');
      if (previousSessionId) await sessions.delete(previousSessionId);
      return sessions.create(user.id, { username: user.username });
    },

    async logOut(sessionId: string): Promise<void> {
      await sessions.delete(sessionId);
    },

    async profile(username: string): Promise<CachedProfile> {
      const profile = await cached<CachedProfile>(cache, profileCacheKey(username), async () => {
        // Filled from the primary, so the cache never holds a lagging replica's answer.
        const row = await users.getProfile(username, true);
        return row && { ...row, createdAt: row.createdAt.toISOString() };
      });
      if (!profile) throw notFound('user');
      return profile;
    },

    async requireByUsername(username: string): Promise<{ id: string; username: string }> {
      const user = await users.getByUsername(username);
      if (!user) throw notFound('user');
      return { id: user.id, username: user.username };
    },

    get: (id: string) => users.get(id),
  };
}

export type UserService = ReturnType<typeof createUserService>;
