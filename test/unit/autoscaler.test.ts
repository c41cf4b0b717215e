import { describe, expect, it } from 'vitest';
import { decide, InFlightWindow, recommend } from '../../src/cluster/supervisor/autoscaler.ts';
import { backoffDelay } from '../../src/cluster/supervisor/index.ts';
import { autoscalePolicy } from '../../src/cluster/topology/index.ts';

const policy = autoscalePolicy.parse({ min: 2, max: 8, target: 2 });

describe("the autoscaler: Kubernetes HPA's rule", () => {
  it('recommends ceil(current × metric / target), and no change within the tolerance', () => {
    expect(recommend(2, 4, policy)).toBe(4);
    expect(recommend(2, 5, policy)).toBe(5);
    expect(recommend(4, 1, policy)).toBe(2);
    expect(recommend(4, 2.2, policy)).toBe(4); // ratio 1.1: within 0.1
    expect(recommend(4, 1.8, policy)).toBe(4);
    expect(recommend(4, 2.3, policy)).toBe(5);
    expect(recommend(3, 0, policy)).toBe(1);
  });

  it('scales up at once, within max', () => {
    const history: { at: number; recommendation: number }[] = [];
    expect(decide(0, 2, 6, policy, history)).toMatchObject({ desired: 6, reason: 'scale up' });
    expect(decide(5_000, 2, 20, policy, history)).toMatchObject({ recommendation: 8, desired: 8 });
  });

  it('scales down only to the highest recommendation of the stabilization window, within min', () => {
    const history: { at: number; recommendation: number }[] = [];
    const s = 1000;
    expect(decide(0, 6, 2, policy, history).desired).toBe(6);
    // The load falls: each recommendation is lower, but 6 stays in the window for 60 s.
    expect(decide(5 * s, 6, 0.5, policy, history)).toMatchObject({ recommendation: 2, desired: 6 });
    expect(decide(30 * s, 6, 0.5, policy, history).reason).toMatch(/stabilization window \(max 6\)/);
    // 61 s later the high recommendation has left the window.
    expect(decide(61 * s, 6, 0.5, policy, history)).toMatchObject({ desired: 2, reason: 'scale down' });
    // Never below min.
    expect(decide(200 * s, 2, 0, policy, history)).toMatchObject({ recommendation: 2, desired: 2 });
  });

  it('brings a count outside [min, max] back inside', () => {
    expect(decide(0, 1, 2, policy, []).desired).toBe(2);
    expect(decide(0, 9, 2, policy, []).desired).toBe(8);
  });

  it('averages requests in flight per ready server over its window', () => {
    const w = new InFlightWindow(10_000);
    w.add(0, 4, 2);
    w.add(1000, 8, 2);
    expect(w.mean()).toBe(3);
    w.add(20_000, 2, 1);
    expect(w.mean()).toBe(2);
  });
});

describe("the supervisor's restart back-off (Kubernetes' crash loop)", () => {
  it('waits 10 s, then twice as long each time, up to 5 min', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(backoffDelay)).toEqual([
      10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000,
    ]);
  });
});
