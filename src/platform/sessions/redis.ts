import type { Redis } from 'ioredis';
import type { Session, SessionStore } from '../../ports/sessions.ts';
import { orUnavailable } from '../redis/connect.ts';
import { newSessionId, sessionDigest } from './ids.ts';

interface Stored {
  userId: string;
  data: Record<string, string>;
  expiresAt: string;
}

/**
 * Sessions in the durable Redis, under the SHA-256 digest of their id (as in
 * the database store), expiring with the session. Every write waits until a
 * replica has it (`WAIT 1`, bounded), so a Sentinel failover logs nobody out;
 * when no replica answers in time the write stands on the master alone and
 * `onUnreplicated` is told.
 */
export function createRedisSessionStore(
  redis: Redis,
  ttlSeconds: number,
  opts: { waitMs?: number; onUnreplicated?: (op: string) => void; now?: () => Date } = {},
): SessionStore {
  const now = opts.now ?? (() => new Date());
  const key = (id: string) => `session:${sessionDigest(id)}`;
  const replicated = async (op: string) => {
    const acked = Number(await redis.call('WAIT', '1', String(opts.waitMs ?? 500)));
    if (acked < 1) opts.onUnreplicated?.(op);
  };
  const store: SessionStore = {
    async create(userId, data = {}) {
      const id = newSessionId();
      const expiresAt = new Date(now().getTime() + ttlSeconds * 1000);
      const stored: Stored = { userId, data: { ...data }, expiresAt: expiresAt.toISOString() };
      await redis.set(key(id), JSON.stringify(stored), 'PX', ttlSeconds * 1000);
      await replicated('create');
      return { id, userId, data: { ...data }, expiresAt };
    },
    async get(id) {
      if (!id) return null;
      const raw = await redis.get(key(id));
      if (!raw) return null;
      const stored = JSON.parse(raw) as Stored;
      const expiresAt = new Date(stored.expiresAt);
      if (expiresAt <= now()) return null;
      return { id, userId: stored.userId, data: stored.data, expiresAt } satisfies Session;
    },
    async update(id, data) {
      const raw = await redis.get(key(id));
      if (!raw) return;
      const stored = JSON.parse(raw) as Stored;
      await redis.set(key(id), JSON.stringify({ ...stored, data }), 'KEEPTTL', 'XX');
      await replicated('update');
    },
    async delete(id) {
      await redis.del(key(id));
      await replicated('delete');
    },
    // The connection belongs to the runtime, which closes it.
    async close() {},
  };
  const guarded =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    (...args: A) =>
      orUnavailable('the session store', () => fn(...args));
  return {
    create: guarded(store.create),
    get: guarded(store.get),
    update: guarded(store.update),
    delete: guarded(store.delete),
    close: store.close,
  };
}
