import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The request a piece of work belongs to, carried through async calls, so
 * that slow-query and job logs name the request id HAProxy (or the server)
 * gave it.
 */
export interface RequestContext {
  reqId: string;
  /** Database queries the request has made so far. */
  queries: number;
}

const storage = new AsyncLocalStorage<RequestContext>();

export function runWithRequestId(reqId: string, fn: () => void): void {
  storage.run({ reqId, queries: 0 }, fn);
}

/** The context of the request this code runs for, if any. */
export function currentRequestContext(): RequestContext | undefined {
  return storage.getStore();
}

/** Counts one database query against the current request. */
export function countQuery(): void {
  const ctx = storage.getStore();
  if (ctx) ctx.queries++;
}

export function currentRequestId(): string | undefined {
  return storage.getStore()?.reqId;
}
