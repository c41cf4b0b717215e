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
 * `onUnreplicated` is told (for the writes that shared that wait; not for
 * those in the window below, which do not wait).
 *
 * `WAIT` blocks the connection it is sent on (Redis reads nothing more from
 * it until the wait ends), so:
 * - writes go through a connection of their own (`writer`), and reads are
 *   never queued behind a wait;
 * - concurrent writes share a wait, as a group commit does: one `WAIT` in
 *   flight at a time, and the writes that finish meanwhile share the next
 *   one. Without this, the writes a failover held up would send their waits
 *   together when the new master answers, and serve them one after another
 *   (five of them: 2.5 s with no replica yet);
 * - after a wait that no replica answered (the replica is gone: a failover
 *   just promoted it, or it is resyncing), writes for the next `skipWaitMs`
 *   do not wait: they would stand on the master alone either way, only
 *   later, each holding its request (and the balancer's slot) for `waitMs`.
 *   The first write after that window waits again, so a returning replica is
 *   seen within `skipWaitMs`.
 */
export function createRedisSessionStore(
  redis: Redis,
  ttlSeconds: number,
  opts: {
    writer?: Redis;
    waitMs?: number;
    skipWaitMs?: number;
    onUnreplicated?: (op: string) => void;
    now?: () => Date;
  } = {},
): SessionStore {
  const now = opts.now ?? (() => new Date());
  const writer = opts.writer ?? redis;
  const key = (id: string) => `session:${sessionDigest(id)}`;
  const replicated = replicationWait(writer, opts);
  const store: SessionStore = {
    async create(userId, data = {}) {
      const id = newSessionId();
      const expiresAt = new Date(now().getTime() + ttlSeconds * 1000);
      const stored: Stored = { userId, data: { ...data }, expiresAt: expiresAt.toISOString() };
      await writer.set(key(id), JSON.stringify(stored), 'PX', ttlSeconds * 1000);
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
      await writer.set(key(id), JSON.stringify({ ...stored, data }), 'KEEPTTL', 'XX');
      await replicated('update');
    },
    async delete(id) {
      await writer.del(key(id));
      await replicated('delete');
    },
    // The connections belong to the runtime, which closes them.
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

/** Skipped: a wait just timed out, and the window in which writes do not wait is open. */
const skipped = -1;

/**
 * `(op) => …` resolves when the connection's writes so far are on a replica,
 * or it is known they are not (see createRedisSessionStore).
 */
function replicationWait(
  writer: Redis,
  opts: { waitMs?: number; skipWaitMs?: number; onUnreplicated?: (op: string) => void },
): (op: string) => Promise<void> {
  let waitAgainAt = 0;
  let inFlight: Promise<number> | undefined;
  let next: Promise<number> | undefined;
  const shared = (): Promise<number> => {
    if (Date.now() < waitAgainAt) return Promise.resolve(skipped);
    if (!inFlight) {
      inFlight = writer
        .call('WAIT', '1', String(opts.waitMs ?? 500))
        .then(Number)
        .finally(() => {
          inFlight = undefined;
        });
      return inFlight;
    }
    // The wait in flight was sent before this write: the next one covers it.
    next ??= inFlight
      .catch(() => undefined)
      .then(() => {
        next = undefined;
        return shared();
      });
    return next;
  };
  return async (op) => {
    const acked = await shared();
    if (acked === skipped || acked >= 1) return;
    waitAgainAt = Math.max(waitAgainAt, Date.now() + (opts.skipWaitMs ?? 1000));
    opts.onUnreplicated?.(op);
  };
}
