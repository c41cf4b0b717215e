import type { IdempotencyClaim, IdempotencyStore, StoredResponse } from '../../ports/idempotency.ts';

/** Idempotency records in this process only (tests, and a server with no shared store). */
export function createMemoryIdempotencyStore(now: () => number = Date.now): IdempotencyStore {
  const entries = new Map<string, { fingerprint: string; response?: StoredResponse; until: number }>();
  return {
    async claim(key, fingerprint, leaseMs): Promise<IdempotencyClaim> {
      const e = entries.get(key);
      if (!e || e.until <= now()) {
        entries.set(key, { fingerprint, until: now() + leaseMs });
        return { state: 'claimed' };
      }
      return e.response
        ? { state: 'done', fingerprint: e.fingerprint, response: e.response }
        : { state: 'running', fingerprint: e.fingerprint };
    },
    async complete(key, fingerprint, response, ttlSeconds) {
      entries.set(key, { fingerprint, response, until: now() + ttlSeconds * 1000 });
    },
    async release(key, fingerprint) {
      const e = entries.get(key);
      if (e && !e.response && e.fingerprint === fingerprint) entries.delete(key);
    },
  };
}
