import { type Cache, cached, notStored } from '../../ports/cache.ts';
import { preferPrimary } from '../../ports/db.ts';
import type { BusinessMetrics } from '../../ports/metrics.ts';
import type { Session, SessionStore } from '../../ports/sessions.ts';
import { shardOfUsername } from '../../ports/shards.ts';
import { conflict, notFound, unauthorized } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Throttle } from '../throttle.ts';
import { dummyHash, hashPassword, verifyPassword } from './password.ts';
import type { ProfileRow, UserRepository } from './repository.ts';

export const usernamePattern = /^[a-z0-9_]{3,30}$/;
export const passwordMinLength = 10;
export const passwordMaxLength = 200;

const reservedUsernames = new Set(['suggested']);

export const profileCacheKey = (username: string) => `profile:${username}`;
/** A username's account id (names and ids never change once made). */
export const userIdCacheKey = (username: string) => `userid:${username}`;

export interface CachedProfile extends Omit<ProfileRow, 'createdAt'> {
  createdAt: string;
}

export function createUserService(deps: {
  users: UserRepository;
  sessions: SessionStore;
  cache: Cache;
  metrics: BusinessMetrics;
  throttle: Throttle;
}) {
  const { users, sessions, cache, metrics, throttle } = deps;
  return {
    /** Creates an account; `client` (the address) counts against the sign-up limit. */
    async signUp(username: string, password: string, client: string): Promise<{ id: string; username: string }> {
      await throttle.beforeSignUp(client);
      // A path of the API (/api/v1/users/suggested), not a name.
      if (reservedUsernames.has(username)) throw conflict('that username is taken');
      const id = newId(shardOfUsername(username));
      const created = await users.create({ id, username, passwordHash: await hashPassword(password) });
      if (!created) throw conflict('that username is taken');
      // A lookup of this name before it existed may have cached "no such user".
      await cache.delete(profileCacheKey(username), userIdCacheKey(username));
      metrics.signup();
      return { id, username };
    },

    /**
     * Checks the password and starts a new session; `previousSessionId` is
     * ended (id rotation). The account is read on the primary, so an account
     * made a moment ago on a lagging replica can log in.
     */
    async logIn(
      username: string,
      password: string,
      opts: { client: string; previousSessionId?: string },
    ): Promise<Session> {
      await throttle.beforeLogIn(opts.client, username);
      const user = await users.getByUsername(username, true);
      const ok = await verifyPassword(password, user?.passwordHash ?? dummyHash);
      if (!user || !ok) {
        if (user) await throttle.logInFailed(username, opts.client);
        throw unauthorized('wrong username or password');
      }
      await throttle.logInSucceeded(username, opts.client);
      if (opts.previousSessionId) await sessions.delete(opts.previousSessionId);
      return sessions.create(user.id, { username: user.username });
    },

    /** A session for an account that was just made: signing up logs you in. */
    async startSession(user: { id: string; username: string }, previousSessionId?: string): Promise<Session> {
      if (previousSessionId) await sessions.delete(previousSessionId);
      return sessions.create(user.id, { username: user.username });
    },

    async logOut(sessionId: string): Promise<void> {
      await sessions.delete(sessionId);
    },

    async profile(username: string): Promise<CachedProfile> {
      const profile = await cached<CachedProfile>(cache, profileCacheKey(username), async () => {
        // Filled from the primary, so the cache never holds a lagging replica's answer. A primary that is
        // late (a failover, the primary data center lost) gives way to a replica, whose answer is not kept.
        const { value: row, from } = await preferPrimary(
          () => users.getProfile(username, true),
          () => users.getProfile(username, false),
          { usable: (r) => r !== undefined },
        );
        const view = row && { ...row, createdAt: row.createdAt.toISOString() };
        return from === 'primary' ? view : notStored(view);
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

    isAdmin: (userId: string) => users.isAdmin(userId),

    /** An operator's act (`scaleout admin grant|revoke`): nobody becomes an admin through the site. */
    async setRole(username: string, role: 'member' | 'admin'): Promise<void> {
      if (!(await users.setRole(username, role))) throw notFound('user');
    },

    admins: () => users.admins(),
  };
}

export type UserService = ReturnType<typeof createUserService>;
