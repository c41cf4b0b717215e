import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import type { InvalidationChannel } from '../../ports/invalidations.ts';

export interface PostgresInvalidationOptions {
  /** The primary (through the database proxy, so a failover's new primary is found on reconnect). */
  url: string;
  channel?: string;
  logger: Logger;
  /** The longest `publish` waits for every other process to confirm it dropped the keys. */
  ackTimeoutMs?: number;
  /** How often the number of listening processes is counted. */
  peersEveryMs?: number;
  /** Told of each publish: ms until every other process confirmed, or null when some did not in time. */
  onPublish?: (ms: number | null) => void;
}

/** NOTIFY payloads are limited to 8000 bytes: keys are sent in messages below that. */
const maxPayload = 7000;

type Message =
  | { t: 'inv'; from: string; id: string; keys: string[] }
  | { t: 'ack'; from: string; to: string; id: string };

/**
 * Invalidations over PostgreSQL's LISTEN/NOTIFY. A notification is delivered
 * only when the transaction that sent it commits, to every session listening
 * on the channel: Facebook memcache's "invalidation from the commit log",
 * with the database every web server already shares and no new server.
 *
 * It goes one step further than memcache's, which is asynchronous (a read on
 * another server right after a write may be stale): each process that drops
 * the keys answers with an acknowledgement, and `publish` resolves once every
 * other listening process has answered (their number is read from
 * pg_stat_activity, every second), or after `ackTimeoutMs` for a process that
 * hangs. So a write is answered only after every live server has forgotten
 * what it made stale.
 *
 * When the listening connection drops (a failover), what was sent meanwhile
 * is lost: the listener is told of a gap and drops its whole cache, then
 * listens again.
 */
export async function createPostgresInvalidations(o: PostgresInvalidationOptions): Promise<InvalidationChannel> {
  const channel = o.channel ?? 'scaleout_cache';
  const listenSql = `LISTEN ${channel}`;
  const origin = randomBytes(6).toString('hex');
  const ackTimeoutMs = o.ackTimeoutMs ?? 250;
  const sender = new pg.Pool({ connectionString: o.url, max: 3, idleTimeoutMillis: 30_000 });
  sender.on('error', () => {});
  const listeners: { keys(keys: string[]): void | Promise<void>; gap(): void }[] = [];
  const waiting = new Map<string, { acks: Set<string>; done: () => void }>();
  let seq = 0;
  let closed = false;
  let listener: pg.Client | null = null;
  let peers = 0;

  const notify = (m: Message) => sender.query('SELECT pg_notify($1, $2)', [channel, JSON.stringify(m)]);

  const onMessage = (payload: string | undefined) => {
    let m: Message;
    try {
      m = JSON.parse(payload ?? '');
    } catch {
      return;
    }
    if (m.from === origin) return;
    if (m.t === 'ack') {
      const w = m.to === origin ? waiting.get(m.id) : undefined;
      if (w) {
        w.acks.add(m.from);
        if (w.acks.size >= peers) w.done();
      }
      return;
    }
    // Confirmed once every listener has dropped the keys (a data center's cache Redis answers in a round trip).
    void Promise.allSettled(listeners.map((l) => l.keys(m.keys))).then(() =>
      notify({ t: 'ack', from: origin, to: m.from, id: m.id }).catch(() => {}),
    );
  };

  // Every process listening on the channel holds one idle session whose last statement is the LISTEN.
  const countPeers = async () => {
    const r = await sender.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query = $1',
      [listenSql],
    );
    peers = Math.max(0, (r.rows[0]?.n ?? 1) - (listener ? 1 : 0));
  };
  const peersTimer = setInterval(() => void countPeers().catch(() => {}), o.peersEveryMs ?? 1000);
  peersTimer.unref();

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
    await client.query(listenSql);
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
  await countPeers().catch(() => {});

  const send = async (keys: string[]) => {
    const id = `${++seq}`;
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const acks = new Set<string>();
    const confirmed = new Promise<boolean>((resolve) => {
      waiting.set(id, { acks, done: () => resolve(true) });
      timer = setTimeout(() => resolve(false), ackTimeoutMs);
    });
    try {
      await notify({ t: 'inv', from: origin, id, keys });
      const all = peers === 0 || acks.size >= peers || (await confirmed);
      o.onPublish?.(all ? performance.now() - started : null);
    } catch (err) {
      // The write it follows has committed: its answer must not fail. Other processes keep the keys until their TTL.
      o.onPublish?.(null);
      o.logger.error({ err, keys: keys.length }, 'cache invalidation not sent');
    } finally {
      clearTimeout(timer);
      waiting.delete(id);
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
      clearInterval(peersTimer);
      const client = listener;
      listener = null;
      await client?.end().catch(() => {});
      await sender.end().catch(() => {});
    },
  };
}
