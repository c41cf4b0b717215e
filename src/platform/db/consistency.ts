import { AsyncLocalStorage } from 'node:async_hooks';

interface Scope {
  /** The WAL position this request's reads must see. */
  minLsn: string | undefined;
  wrote: boolean;
}

/**
 * Per-request read-your-writes state, carried through async calls. The server
 * runs each request in `run`, then `begin`s it with the session's token; the
 * primary marks writes; the replica router reads `minLsn`.
 */
export class ConsistencyScope {
  readonly #storage = new AsyncLocalStorage<Scope>();

  run(fn: () => void): void {
    this.#storage.run({ minLsn: undefined, wrote: false }, fn);
  }
  begin(token: string | undefined): void {
    const scope = this.#storage.getStore();
    if (scope) scope.minLsn = token && parseLsn(token) !== null ? token : undefined;
  }
  markWrite(): void {
    const scope = this.#storage.getStore();
    if (scope) scope.wrote = true;
  }
  get minLsn(): string | undefined {
    return this.#storage.getStore()?.minLsn;
  }
  get wrote(): boolean {
    return this.#storage.getStore()?.wrote ?? false;
  }
}

/** A PostgreSQL LSN ("16/B374D848") as a number of bytes; null when malformed. */
export function parseLsn(lsn: string): bigint | null {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!m) return null;
  return (BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`);
}

/** a ≥ b, for LSNs. */
export function lsnReached(a: string, b: string): boolean {
  const x = parseLsn(a);
  const y = parseLsn(b);
  return x !== null && y !== null && x >= y;
}
