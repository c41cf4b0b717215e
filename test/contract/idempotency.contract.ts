import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { IdempotencyStore, StoredResponse } from '../../src/ports/idempotency.ts';

const answer: StoredResponse = {
  status: 201,
  headers: { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] },
  body: Buffer.from('{"ok":true}').toString('base64'),
};

/** What every IdempotencyStore must do: the database's (single server), the durable Redis's, the in-process one. */
export function runIdempotencyContract(opts: { name: string; create(): Promise<IdempotencyStore> }): void {
  describe(`IdempotencyStore contract: ${opts.name}`, () => {
    const key = () => `test:${randomBytes(6).toString('hex')}`;

    it('the first claim runs; a repeat sees it running, then its answer, with the fingerprint', async () => {
      const store = await opts.create();
      const k = key();
      expect(await store.claim(k, 'fp1', 10_000)).toEqual({ state: 'claimed' });
      expect(await store.claim(k, 'fp1', 10_000)).toEqual({ state: 'running', fingerprint: 'fp1' });
      expect(await store.claim(k, 'fp2', 10_000)).toEqual({ state: 'running', fingerprint: 'fp1' });
      await store.complete(k, 'fp1', answer, 60);
      expect(await store.claim(k, 'fp1', 10_000)).toEqual({ state: 'done', fingerprint: 'fp1', response: answer });
      expect(await store.claim(k, 'fp2', 10_000)).toMatchObject({ state: 'done', fingerprint: 'fp1' });
    });

    it('a released key can be claimed again; a release by another fingerprint does nothing', async () => {
      const store = await opts.create();
      const k = key();
      await store.claim(k, 'fp1', 10_000);
      await store.release(k, 'fp2');
      expect((await store.claim(k, 'fp1', 10_000)).state).toBe('running');
      await store.release(k, 'fp1');
      expect(await store.claim(k, 'fp1', 10_000)).toEqual({ state: 'claimed' });
    });

    it("a running claim whose lease passed (its process died) is taken by the next; an answer's time to live ends", async () => {
      const store = await opts.create();
      const k = key();
      await store.claim(k, 'fp1', 200);
      await new Promise((r) => setTimeout(r, 300));
      expect(await store.claim(k, 'fp1', 10_000)).toEqual({ state: 'claimed' });
      await store.complete(k, 'fp1', answer, 1);
      expect((await store.claim(k, 'fp1', 10_000)).state).toBe('done');
      await new Promise((r) => setTimeout(r, 1200));
      expect(await store.claim(k, 'fp1', 10_000)).toEqual({ state: 'claimed' });
    });

    it('of many concurrent claims of one key, exactly one runs', async () => {
      const store = await opts.create();
      const k = key();
      const claims = await Promise.all(Array.from({ length: 20 }, () => store.claim(k, 'fp', 10_000)));
      expect(claims.filter((c) => c.state === 'claimed')).toHaveLength(1);
    });
  });
}
