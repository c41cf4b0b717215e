import type { Redis } from 'ioredis';
import type { RateCount, RateLimiter } from '../../ports/rate-limits.ts';
import { orUnavailable } from '../redis/connect.ts';

// One round trip, atomic: count, start the window on the first hit, note the time.
const hitScript = `
local c = redis.call('HINCRBY', KEYS[1], 'count', 1)
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
redis.call('HSET', KEYS[1], 'last', ARGV[2])
return {c, redis.call('PTTL', KEYS[1])}`;

/** Rate-limit counters in the durable Redis, shared by every web server: a hash per key that expires with its window. */
export function createRedisRateLimiter(redis: Redis, prefix = 'rl:'): RateLimiter {
  const key = (k: string) => prefix + k;
  const limiter: RateLimiter = {
    async hit(k, windowMs): Promise<RateCount> {
      const now = Date.now();
      const [count, ttl] = (await redis.eval(hitScript, 1, key(k), Math.max(1, Math.round(windowMs)), now)) as [
        number,
        number,
      ];
      return { count, resetAt: new Date(now + Math.max(0, ttl)), lastHitAt: new Date(now) };
    },
    async peek(k) {
      const [fields, ttl] = await Promise.all([redis.hgetall(key(k)), redis.pttl(key(k))]);
      if (!fields.count || ttl <= 0) return null;
      return {
        count: Number(fields.count),
        resetAt: new Date(Date.now() + ttl),
        lastHitAt: new Date(Number(fields.last ?? Date.now())),
      };
    },
    async reset(k) {
      await redis.del(key(k));
    },
  };
  return {
    hit: (k, windowMs) => orUnavailable('the rate-limit store', () => limiter.hit(k, windowMs)),
    peek: (k) => orUnavailable('the rate-limit store', () => limiter.peek(k)),
    reset: (k) => orUnavailable('the rate-limit store', () => limiter.reset(k)),
  };
}
