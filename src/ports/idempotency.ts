/**
 * Idempotency keys (the IETF draft `Idempotency-Key` header, as Stripe's API
 * uses it): a write sent again with the same key returns the first answer and
 * does nothing again. The store holds, per key, the request's fingerprint and,
 * once it finished, its answer.
 */

/** The first answer to a keyed request, replayed to its repeats. */
export interface StoredResponse {
  status: number;
  /** The headers a repeat must see again: content-type, location, set-cookie. */
  headers: Record<string, string | string[]>;
  /** The body, base64 (it may be any bytes). */
  body: string;
}

export type IdempotencyClaim =
  /** Nobody holds the key: this request runs, and must `complete` or `release` it. */
  | { state: 'claimed' }
  /** Another request with this key is running now (or its process died within the lease). */
  | { state: 'running'; fingerprint: string }
  | { state: 'done'; fingerprint: string; response: StoredResponse };

export interface IdempotencyStore {
  /**
   * Takes the key for a request with this fingerprint for `leaseMs` (after
   * which a process that died holding it no longer blocks its retries), or
   * says who has it.
   */
  claim(key: string, fingerprint: string, leaseMs: number): Promise<IdempotencyClaim>;
  /** Keeps the answer for `ttlSeconds`; repeats get it back. */
  complete(key: string, fingerprint: string, response: StoredResponse, ttlSeconds: number): Promise<void>;
  /** Lets the key go without an answer (the request did nothing a retry must not do again). */
  release(key: string, fingerprint: string): Promise<void>;
}
