import type { Redis } from 'ioredis';
import type { IdempotencyClaim, IdempotencyStore, StoredResponse } from '../../ports/idempotency.ts';
import { orUnavailable } from '../redis/connect.ts';

// Claim in one round trip: the record if there is one, else a running record that expires with its lease.
const claimScript = `
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;

// Release only our own running record (a repeat that came after the lease may hold the key now).
const releaseScript = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`;

interface Entry {
  fingerprint: string;
  response?: StoredResponse;
}

/** Idempotency records in the durable Redis: a JSON string per key, running with a lease, done for a day. */
export function createRedisIdempotencyStore(redis: Redis, prefix = 'idem:'): IdempotencyStore {
  const key = (k: string) => prefix + k;
  const running = (fingerprint: string) => JSON.stringify({ fingerprint } satisfies Entry);
  const store: IdempotencyStore = {
    async claim(k, fingerprint, leaseMs): Promise<IdempotencyClaim> {
      const found = (await redis.eval(claimScript, 1, key(k), running(fingerprint), Math.max(1, leaseMs))) as
        | string
        | null;
      if (!found) return { state: 'claimed' };
      const entry = JSON.parse(found) as Entry;
      return entry.response
        ? { state: 'done', fingerprint: entry.fingerprint, response: entry.response }
        : { state: 'running', fingerprint: entry.fingerprint };
    },
    async complete(k, fingerprint, response, ttlSeconds) {
      await redis.set(key(k), JSON.stringify({ fingerprint, response } satisfies Entry), 'EX', ttlSeconds);
    },
    async release(k, fingerprint) {
      await redis.eval(releaseScript, 1, key(k), running(fingerprint));
    },
  };
  return {
    claim: (k, f, l) => orUnavailable('the idempotency store', () => store.claim(k, f, l)),
    complete: (k, f, r, t) => orUnavailable('the idempotency store', () => store.complete(k, f, r, t)),
    release: (k, f) => orUnavailable('the idempotency store', () => store.release(k, f)),
  };
}
