import { Redis } from 'ioredis';

export interface FailoverNotices {
  sentinels: { host: string; port: number }[];
  /** Sentinel's name of the client's master: notices of other masters are not the client's. */
  name: string;
  sentinelPassword?: string;
}

/**
 * Moves a Sentinel client to its master's successor as soon as the Sentinels
 * announce one (`+switch-master`), instead of waiting for the old master's
 * socket to close: one that hangs (a frozen process, a cut link) may never
 * close it.
 *
 * ioredis' own `failoverDetector` does the same job with a flaw this avoids:
 * on a notice for any master it cancels the client's connection, and when the
 * client has lost its master and is asking the Sentinels where the master is
 * now, the cancelled connect ends it for good (status `end`, every command
 * "Connection is closed.", no reconnect; ioredis#1683). That is the window of
 * every failover after a kill. Here only a client connected (or connecting)
 * to another server than the new master is moved; one asking the Sentinels
 * will hear of the new master from them.
 */
export function followFailovers(client: Redis, o: FailoverNotices): void {
  let listeners: Redis[] = [];
  const listen = () => {
    if (listeners.length > 0) return;
    listeners = o.sentinels.map((sentinel) => {
      const listener = new Redis({
        ...sentinel,
        password: o.sentinelPassword,
        connectTimeout: 1000,
        enableReadyCheck: false,
        // A Sentinel that restarts is listened to again (ioredis subscribes again after a reconnect).
        retryStrategy: (times) => Math.min(100 * 2 ** times, 2000),
        maxRetriesPerRequest: null,
      });
      listener.on('error', () => {});
      listener.subscribe('+switch-master').catch(() => {});
      // "<name> <old ip> <old port> <new ip> <new port>"; each Sentinel sends it, and the first moves the client.
      listener.on('message', (_channel: string, message: string) => {
        const [name, , , host, port] = message.split(' ');
        if (name !== o.name) return;
        if (client.status !== 'ready' && client.status !== 'connect') return;
        if (client.stream?.remoteAddress === host && String(client.stream?.remotePort) === port) return;
        client.disconnect(true);
      });
      return listener;
    });
  };
  // Listening lasts as long as the client: a client closed and connected again (BullMQ does) listens again.
  listen();
  client.on('connecting', listen);
  client.on('end', () => {
    for (const listener of listeners) listener.disconnect();
    listeners = [];
  });
}
