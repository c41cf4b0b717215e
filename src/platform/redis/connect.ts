import { Redis, type RedisOptions } from 'ioredis';
import { StoreUnavailableError } from '../../ports/db.ts';
import { followFailovers } from './failovers.ts';

export interface RedisTarget {
  /** Sentinels to ask for the master (host:port each). */
  sentinels?: { host: string; port: number }[];
  /** Sentinel's name of the master (with `sentinels`). */
  name?: string;
  /** Or a fixed address (tests, a single Redis). */
  host?: string;
  port?: number;
  /** The servers' password (requirepass), and the Sentinels'. */
  password?: string;
  sentinelPassword?: string;
}

/** "host:port,host:port" → addresses. */
export function parseHostPorts(list: string[]): { host: string; port: number }[] {
  return list.map((entry) => {
    const m = /^(.+):(\d{1,5})$/.exec(entry.trim());
    if (!m) throw new Error(`not host:port: ${entry}`);
    return { host: m[1] as string, port: Number(m[2]) };
  });
}

/**
 * An ioredis client for one Redis tier. Through Sentinel it always talks to
 * the current master: `followFailovers` makes it reconnect as soon as the
 * Sentinels announce a new one (instead of waiting for the old socket to
 * time out), and a write answered READONLY (a master made a replica) is sent
 * again to the master after a reconnect. Commands fail fast while no master
 * answers (a bounded number of retries, no endless offline queue), so
 * callers can degrade or answer 503. Its duplicates (BullMQ's blocking
 * connections) follow failovers too.
 */
export function connectRedis(target: RedisTarget, extra: RedisOptions = {}): Redis {
  const common: RedisOptions = {
    connectTimeout: 1000,
    maxRetriesPerRequest: 2,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 1000),
    ...extra,
  };
  if (!target.sentinels?.length) {
    return quiet(new Redis({ ...common, host: target.host, port: target.port, password: target.password }));
  }
  const notices = { sentinels: target.sentinels, name: String(target.name), sentinelPassword: target.sentinelPassword };
  const following = (client: Redis): Redis => {
    followFailovers(quiet(client), notices);
    const duplicate = client.duplicate.bind(client);
    client.duplicate = (override) => following(duplicate(override));
    return client;
  };
  return following(
    new Redis({
      ...common,
      sentinels: target.sentinels,
      name: target.name,
      password: target.password,
      sentinelPassword: target.sentinelPassword,
      role: 'master',
      // followFailovers does its job, without the flaw that can end a client for good (see there).
      failoverDetector: false,
      sentinelRetryStrategy: (times) => Math.min(50 * 2 ** times, 1000),
      // A master made a replica under a connected client (a failover that demoted the server it reached,
      // a notice it missed) answers writes READONLY and keeps the connection: reconnect, through the
      // Sentinels to the master now, and send the command again there.
      reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
    }),
  );
}

/** Errors surface on the commands; an unhandled 'error' event would crash the process. */
function quiet(client: Redis): Redis {
  client.on('error', () => {});
  return client;
}

/**
 * For the cache tier: a command fails at once while no master is connected
 * (no offline queue) and after 100 ms on a hung one, so a dead cache costs
 * requests nothing; they go to the database.
 */
export const cacheTierOptions: RedisOptions = {
  enableOfflineQueue: false,
  commandTimeout: 100,
  maxRetriesPerRequest: 0,
};

/**
 * For the durable tier: during a Sentinel failover (≈ 2 s) a command waits
 * for the new master rather than failing, up to 10 s; then it fails (503).
 */
export const durableTierOptions: RedisOptions = { maxRetriesPerRequest: null, commandTimeout: 10_000 };

/** For a subscriber: it waits for the server as long as it takes, and subscribes again after a reconnect. */
export const subscriberOptions: RedisOptions = { maxRetriesPerRequest: null, enableAutoPipelining: false };

/**
 * Runs a Redis call; a failure of the store (no master, a timeout, a lost
 * connection) becomes StoreUnavailableError, which the server answers with
 * 503 and Retry-After instead of 500.
 */
export async function orUnavailable<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new StoreUnavailableError(`${what} is unavailable`, { cause: err });
  }
}
