import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { RateLimiter } from '../../src/ports/rate-limits.ts';

/** What every RateLimiter must do: the database's and the durable Redis's. */
export function runRateLimiterContract(opts: { name: string; create(): Promise<RateLimiter> }): void {
  describe(`RateLimiter contract: ${opts.name}`, () => {
    const key = () => `test:${randomBytes(6).toString('hex')}`;

    it('counts hits in a window, and a new window starts at 1', async () => {
      const limiter = await opts.create();
      const k = key();
      expect((await limiter.hit(k, 300)).count).toBe(1);
      expect((await limiter.hit(k, 300)).count).toBe(2);
      const third = await limiter.hit(k, 300);
      expect(third.count).toBe(3);
      expect(third.resetAt.getTime()).toBeGreaterThan(Date.now());
      expect(third.resetAt.getTime()).toBeLessThanOrEqual(Date.now() + 400);
      await new Promise((r) => setTimeout(r, 400));
      expect(await limiter.peek(k)).toBeNull();
      expect((await limiter.hit(k, 300)).count).toBe(1);
    });

    it('loses no hit when many web servers count at once', async () => {
      const limiter = await opts.create();
      const k = key();
      const counts = await Promise.all(Array.from({ length: 40 }, () => limiter.hit(k, 10_000)));
      expect(counts.map((c) => c.count).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    });

    it('peeks without counting, and reset forgets', async () => {
      const limiter = await opts.create();
      const k = key();
      expect(await limiter.peek(k)).toBeNull();
      await limiter.hit(k, 10_000);
      const seen = await limiter.peek(k);
      expect(seen?.count).toBe(1);
      expect(seen?.lastHitAt.getTime()).toBeLessThanOrEqual(Date.now() + 5);
      expect((await limiter.peek(k))?.count).toBe(1);
      await limiter.reset(k);
      expect(await limiter.peek(k)).toBeNull();
    });
  });
}
