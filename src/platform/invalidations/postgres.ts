import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import type { InvalidationChannel } from '../../ports/invalidations.ts';

export interface PostgresInvalidationOptions {
  /** The primary (through the database proxy, so a failover's new primary is found on reconnect). */
  url: string;
  channel?: string;
  logger: Logger;
  /** The longest `publish` waits for its own message to come back. */
  echoTimeoutMs?: number;
  /** Told of each publish: how long until its echo, or null when it timed out. */
  onPublish?: (ms: number | null) => void;
}

/** NOTIFY payloads are limited to 8000 bytes: keys are sent in messages below that. */
const maxPayload = 7000;

/**
 * Invalidations over PostgreSQL's LISTEN/NOTIFY. A notification is delivered
 * only when the transaction that sent it commits, and to every session
 * listening on the channel, in commit order: Facebook memcache's
 * "invalidation from the commit log" with the database every web server
 * already shares, and no new server.
 *
 * Each process listens on one connection of its own. `publish` sends
 * `pg_notify` and waits until the notification comes back on that
 * connection: by then PostgreSQL has queued it for every listener. When the
 * listening connection drops (a failover), what was sent meanwhile is lost,
 * so the listener is told of a gap and drops its whole cache, then listens again.
 */
export async function createPostgresInvalidations(o: PostgresInvalidationOptions): Promise<InvalidationChannel> {
  const channel = o.channel ?? 'scaleout_cache';
  const origin = randomBytes(6).toString('hex');
  const echoTimeoutMs = o.echoTimeoutMs ?? 200;
  const sender = new pg.Pool({ connectionString: o.url, max: 2, idleTimeoutMillis: 30_000 });
  sender.on('error', () => {});
  const listeners: { keys(keys: string[]): void; gap(): void }[] = [];
  const echoes = new Map<string, () => void>();
  let seq = 0;
  let closed = false;
  let listener: pg.Client | null = null;

  const onMessage = (payload: string | undefined) => {
    if (!payload) return;
    let message: { from: string; id: string; keys: string[] };
    try {
      message = JSON.parse(payload);
    } catch {
      return;
    }
    if (message.from === origin) {
      echoes.get(message.id)?.();
      return;
    }
    for (const l of listeners) l.keys(message.keys);
  };

  const connect = async (): Promise<void> => {
    const client = new pg.Client({ connectionString: o.url });
    client.on('notification', (n) => {
      if (n.channel === channel) onMessage(n.payload);
    });
    const lost = (err?: Error) => {
      if (listener !== client) return;
      listener = null;
      client.removeAllListeners('end');
      void client.end().catch(() => {});
      if (closed) return;
      o.logger.warn({ err }, 'cache invalidation channel lost: dropping the in-process cache, listening again');
      for (const l of listeners) l.gap();
      setTimeout(() => void reconnect(), 500);
    };
    client.on('error', lost);
    client.on('end', () => lost());
    await client.connect();
    await client.query(`LISTEN ${channel}`);
    listener = client;
  };
  const reconnect = async () => {
    while (!closed && listener === null) {
      try {
        await connect();
        // Anything published while it was away is lost: drop it all once more.
        for (const l of listeners) l.gap();
        o.logger.info('cache invalidation channel listening again');
      } catch {
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };
  await connect();

  const send = async (keys: string[]) => {
    const id = `${++seq}`;
    const payload = JSON.stringify({ from: origin, id, keys });
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const echoed = new Promise<boolean>((resolve) => {
      echoes.set(id, () => resolve(true));
      timer = setTimeout(() => resolve(false), echoTimeoutMs);
    });
    try {
      await sender.query('SELECT pg_notify($1, $2)', [channel, payload]);
      // Only a listening connection can hear the echo; without one, this process is already dropping everything.
      const heard = listener ? await echoed : false;
      o.onPublish?.(heard ? performance.now() - started : null);
    } catch (err) {
      // The write it follows has committed: its answer must not fail. Other processes keep the keys until their TTL.
      o.onPublish?.(null);
      o.logger.error({ err, keys: keys.length }, 'cache invalidation not sent');
    } finally {
      clearTimeout(timer);
      echoes.delete(id);
    }
  };

  return {
    async publish(keys) {
      if (keys.length === 0 || closed) return;
      // Split so that each payload stays under PostgreSQL's limit.
      let batch: string[] = [];
      let size = 0;
      const sends: Promise<void>[] = [];
      for (const key of keys) {
        if (batch.length > 0 && size + key.length + 4 > maxPayload) {
          sends.push(send(batch));
          batch = [];
          size = 0;
        }
        batch.push(key);
        size += key.length + 4;
      }
      if (batch.length > 0) sends.push(send(batch));
      await Promise.all(sends);
    },
    subscribe(l) {
      listeners.push(l);
    },
    async close() {
      closed = true;
      const client = listener;
      listener = null;
      await client?.end().catch(() => {});
      await sender.end().catch(() => {});
    },
  };
}
