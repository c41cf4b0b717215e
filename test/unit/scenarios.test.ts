import { describe, expect, it } from 'vitest';
import { Ledger } from '../../src/bench/ledger.ts';
import { buildScenario } from '../../src/bench/scenarios.ts';
import type { SeedManifest } from '../../src/bench/seed.ts';

const manifest: SeedManifest = {
  target: 'http://127.0.0.1:1',
  seed: 1,
  password: 'x',
  viewer: { username: 'u0', token: 't0' },
  celebrity: 'u1',
  users: Array.from({ length: 20 }, (_, i) => `u${i}`),
  tokens: Array.from({ length: 20 }, (_, i) => `t${i}`),
  photoIds: ['p1', 'p2'],
  follows: 3,
};

describe('scenarios', () => {
  it('every write carries an Idempotency-Key unique in the run; reads carry none', async () => {
    const next = await buildScenario('writes', manifest, new Ledger());
    const keys = Array.from({ length: 200 }, (_, i) => next(i).headers?.['idempotency-key']);
    expect(keys.every((k) => typeof k === 'string')).toBe(true);
    expect(new Set(keys).size).toBe(200);
    const reads = await buildScenario('read-photo', manifest, new Ledger());
    expect(reads(0).headers?.['idempotency-key']).toBeUndefined();
  });

  it('steady undoes its follows, the oldest first, once it has made 100, and the ledger forgets them', async () => {
    const ledger = new Ledger();
    const next = await buildScenario('steady', manifest, ledger);
    const followed: string[] = [];
    let unfollows = 0;
    for (let i = 0; i < 20_000 && unfollows < 20; i++) {
      const spec = next(i);
      if (spec.path.endsWith('/follow') && spec.method === 'PUT') {
        // Answered as the site would: the follow took.
        spec.onAnswer?.(204, '');
        followed.push(`${spec.headers?.authorization} ${spec.path}`);
      } else if (spec.path.endsWith('/follow') && spec.method === 'DELETE') {
        // The oldest follow the run made, undone; it was dropped from the ledger.
        expect(`${spec.headers?.authorization} ${spec.path}`).toBe(followed[unfollows]);
        unfollows++;
        spec.onAnswer?.(204, '');
      } else spec.onAnswer?.(204, '{"photo":{"id":"x"}}');
    }
    expect(unfollows).toBe(20);
    // The run's own follows stay at 100 (the graph does not fill up).
    expect(followed.length - unfollows).toBeLessThanOrEqual(100);
    expect(ledger.entries.filter((e) => e.kind === 'follow').length).toBe(followed.length - unfollows);
  });

  it('db-writes: every request is a write; each pair is toggled from where it was left, never two at once', async () => {
    const ledger = new Ledger();
    const next = await buildScenario('db-writes', manifest, ledger);
    const state = new Map<string, boolean>();
    const pending: { pair: string; spec: ReturnType<typeof next> }[] = [];
    for (let i = 0; i < 2000; i++) {
      const spec = next(i);
      expect(['PUT', 'DELETE']).toContain(spec.method);
      const pair = `${spec.headers?.authorization} ${spec.path}`;
      expect(pending.some((p) => p.pair === pair)).toBe(false); // not while one is in flight
      expect(spec.method).toBe(state.get(pair) ? 'DELETE' : 'PUT');
      pending.push({ pair, spec });
      // Answer the oldest few, as the site would.
      while (pending.length > 5) {
        const done = pending.shift();
        if (!done) break;
        done.spec.onAnswer?.(204, '');
        state.set(done.pair, done.spec.method === 'PUT');
      }
    }
    for (const p of pending.splice(0)) {
      p.spec.onAnswer?.(204, '');
      state.set(p.pair, p.spec.method === 'PUT');
    }
    // The ledger holds exactly what is liked or followed now.
    const now = [...state.values()].filter(Boolean).length;
    expect(ledger.entries.length).toBe(now);
    expect(now).toBeGreaterThan(0);
  });
});
