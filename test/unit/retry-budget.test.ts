import { describe, expect, it } from 'vitest';
import { RetryBudget } from '../../src/bench/retry-budget.ts';

describe('retry budget', () => {
  it('allows retries up to its share of the requests sent in the window, plus a floor per second', () => {
    let now = 1_000_000;
    const budget = new RetryBudget({ ratio: 0.1, minPerSecond: 1, windowMs: 10_000 }, () => now);
    for (let i = 0; i < 100; i++) budget.noteSent();
    // 10 % of 100, plus 1 a second over the 10 s window: 20.
    let allowed = 0;
    while (budget.tryRetry()) allowed++;
    expect(allowed).toBe(20);
    expect(budget.refused).toBe(1);
    // Once the window has passed, the old sends and retries no longer count: the floor is all there is.
    now += 11_000;
    allowed = 0;
    while (budget.tryRetry()) allowed++;
    expect(allowed).toBe(10);
  });

  it('refuses every retry with no floor and nothing sent', () => {
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 0, windowMs: 5000 });
    expect(budget.tryRetry()).toBe(false);
    budget.noteSent();
    budget.noteSent();
    budget.noteSent();
    budget.noteSent();
    budget.noteSent();
    expect(budget.tryRetry()).toBe(true);
    expect(budget.tryRetry()).toBe(false);
  });
});
