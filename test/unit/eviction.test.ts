import { describe, expect, it } from 'vitest';
import { scanTrace, simulateOrder, simulateTinyLfu, zipfTrace } from '../../src/bench/eviction.ts';
import { evictionOrder } from '../../src/platform/cache/eviction.ts';

describe('eviction orders', () => {
  it('LRU: a touch moves a key to the back', () => {
    const o = evictionOrder('lru');
    for (const k of ['a', 'b', 'c']) o.add(k);
    o.touch('a');
    expect(o.victim()).toBe('b');
    o.remove('b');
    expect(o.victim()).toBe('c');
  });

  it('FIFO: neither touches nor re-adds change the order', () => {
    const o = evictionOrder('fifo');
    for (const k of ['a', 'b', 'c']) o.add(k);
    o.touch('a');
    o.add('a');
    expect(o.victim()).toBe('a');
  });

  it('LFU: the least used goes first, ties broken by age', () => {
    const o = evictionOrder('lfu');
    for (const k of ['a', 'b', 'c']) o.add(k);
    o.touch('a');
    o.touch('c');
    expect(o.victim()).toBe('b');
    o.remove('b');
    expect(o.victim()).toBe('a');
    o.touch('a');
    expect(o.victim()).toBe('c');
    o.remove('c');
    o.remove('a');
    expect(o.victim()).toBeUndefined();
    o.add('d');
    expect(o.victim()).toBe('d');
  });
});

describe('eviction benchmark traces and W-TinyLFU', () => {
  it('makes the same traces from the same seeds, inside the key space', () => {
    expect(zipfTrace(1000, 5000)).toEqual(zipfTrace(1000, 5000));
    const scan = scanTrace(1000, 20_000);
    expect(Math.min(...scan)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...scan)).toBeLessThan(1000);
  });

  it('keeps the hot keys through scans better than LRU, and every ratio is a ratio', () => {
    const trace = scanTrace(2000, 60_000);
    const lru = simulateOrder('lru', 100, trace);
    const tiny = simulateTinyLfu(100, trace);
    expect(tiny).toBeGreaterThan(lru);
    for (const r of [lru, tiny, simulateOrder('lfu', 100, trace), simulateOrder('fifo', 100, trace)]) {
      expect(r).toBeGreaterThan(0);
      expect(r).toBeLessThan(1);
    }
    // A cache as large as the key space misses each key once only.
    expect(simulateTinyLfu(2000, zipfTrace(2000, 20_000))).toBeGreaterThan(0.9);
  });
});
