import { describe, expect, it } from 'vitest';
import { decideHotShard, shardBalancerPolicy } from '../../src/cluster/reshard/hot-shard.ts';
import { shardRates } from '../../src/cluster/reshard/shard-load.ts';
import { initialShardMap, logicalShards } from '../../src/ports/shards.ts';

const policy = shardBalancerPolicy.parse({});
const even = (rate: number) => new Array<number>(logicalShards).fill(rate);

describe('the shard balancer’s decision', () => {
  it('holds when no shard stands out, or the busiest is too quiet to matter', () => {
    const placement = initialShardMap(['pg-a', 'pg-b']).clusters;
    const flat = decideHotShard({ rates: even(30), placement, clusters: ['pg-a', 'pg-b'] }, policy);
    expect(flat).toMatchObject({ action: 'hold', load: { 'pg-a': 960, 'pg-b': 960 } });
    expect(flat.reason).toMatch(/no hot shard: the busiest runs 1× the others' mean/);
    const quiet = even(0);
    quiet[5] = 15;
    expect(decideHotShard({ rates: quiet, placement, clusters: ['pg-a', 'pg-b'] }, policy)).toMatchObject({
      action: 'hold',
      shard: 5,
      reason: expect.stringMatching(/runs 15 statements\/s/),
    });
  });

  it('a hot shard between two equal clusters stays: moving it would only move the hotspot', () => {
    const placement = initialShardMap(['pg-a', 'pg-b']).clusters;
    const rates = even(10);
    rates[3] = 200;
    const d = decideHotShard({ rates, placement, clusters: ['pg-a', 'pg-b'] }, policy);
    expect(d).toMatchObject({ action: 'hold', shard: 3, from: 'pg-a', to: 'pg-b', rate: 200 });
    expect(d.load).toEqual({ 'pg-a': 510, 'pg-b': 320 });
    expect(d.after).toEqual({ 'pg-a': 310, 'pg-b': 520 });
    expect(d.reason).toMatch(/no cluster has room.*add a cluster/);
  });

  it('moves a hot shard to the least-loaded cluster when that lowers the hottest cluster’s load', () => {
    // A third cluster that holds no shard yet (just added).
    const placement = initialShardMap(['pg-a', 'pg-b']).clusters;
    const rates = even(10);
    rates[40] = 300;
    const d = decideHotShard({ rates, placement, clusters: ['pg-a', 'pg-b', 'pg-c'] }, policy);
    expect(d).toMatchObject({ action: 'move', shard: 40, from: 'pg-b', to: 'pg-c', rate: 300, othersMean: 10 });
    expect(d.after).toEqual({ 'pg-a': 320, 'pg-b': 310, 'pg-c': 300 });
    expect(d.reason).toMatch(/30× the others' mean; pg-c is the least loaded/);
  });

  it('a shard just under the hot factor is not hot; just over it is', () => {
    const placement = initialShardMap(['pg-a', 'pg-b']).clusters;
    const rates = even(10);
    rates[0] = 39;
    const clusters = ['pg-a', 'pg-b', 'pg-c'];
    expect(decideHotShard({ rates, placement, clusters }, policy).action).toBe('hold');
    rates[0] = 41;
    expect(decideHotShard({ rates, placement, clusters }, policy).action).toBe('move');
  });
});

describe('statements per shard between two samples', () => {
  const counts = (k: number, n: number) => {
    const c = new Array<number>(logicalShards).fill(0);
    c[k] = n;
    return c;
  };
  it('per process: a restarted one counts what it ran since; a new one (or one missing a sample) is left out', () => {
    const before = new Map([
      ['web-1', counts(3, 1000)],
      ['web-2', counts(3, 500)],
    ]);
    const after = new Map([
      ['web-1', counts(3, 1100)],
      // Restarted: its counter began again.
      ['web-2', counts(3, 20)],
      // New since the last sample: everything it ran since it started, not one period's.
      ['web-3', counts(3, 90_000)],
    ]);
    expect(shardRates(before, after, 2)[3]).toBe((100 + 20) / 2);
  });
});
