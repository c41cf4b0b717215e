import { describe, expect, it } from 'vitest';
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
