import type pg from 'pg';

const connectionCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTCONN']);
// 08: connection exceptions; 57P01-03: the server is shutting down or starting;
// 25006: read-only transaction, seen for ~100 ms while a replica is promoted; 55000 with "recovery is in
// progress": a WAL-position function (read-your-writes) asked of a node still finishing its promotion.
const sqlStates = /^(08...|57P0[123]|25006)$/;
const inRecovery = (e: { code?: string; message?: string }) =>
  e.code === '55000' && /recovery is in progress/i.test(e.message ?? '');

/** Errors after which the same query may succeed elsewhere or a moment later. */
export function isUnavailable(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  if (!e) return false;
  if (e.code && (connectionCodes.has(e.code) || sqlStates.test(e.code) || inRecovery(e))) return true;
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(
    e.message ?? '',
  );
}

/**
 * A pg client that loses its server emits 'error'. The pool listens only
 * while a client is idle; a client checked out between two queries (inside a
 * transaction, say) would crash the process when its server dies. So every
 * client gets a listener as it connects.
 */
export function guardPool(pool: pg.Pool, onError: (err: Error) => void): void {
  pool.on('error', onError);
  pool.on('connect', (client) => {
    client.on('error', onError);
  });
}
