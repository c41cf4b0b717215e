import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The request a piece of work belongs to, carried through async calls, so
 * that slow-query and job logs name the request id HAProxy (or the server)
 * gave it.
 */
const storage = new AsyncLocalStorage<{ reqId: string }>();

export function runWithRequestId(reqId: string, fn: () => void): void {
  storage.run({ reqId }, fn);
}

export function currentRequestId(): string | undefined {
  return storage.getStore()?.reqId;
}
