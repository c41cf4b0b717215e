import { describe, expect, it } from 'vitest';
import { idPattern, newId } from '../../src/app/ids.ts';
import {
  initialShardMap,
  logicalShards,
  rebalancePlan,
  shardOfId,
  shardOfUsername,
  shardSchema,
} from '../../src/ports/shards.ts';

describe('logical shards in ids', () => {
  it('every id carries its logical shard in its first character, and stays a 16-character URL-safe id', () => {
    for (let shard = 0; shard < logicalShards; shard++) {
      const id = newId(shard);
      expect(id).toMatch(idPattern);
      expect(shardOfId(id)).toBe(shard);
    }
    expect(() => newId(logicalShards)).toThrow(RangeError);
    expect(() => newId(-1)).toThrow(RangeError);
  });

  it('ids on one shard are still unguessable: 90 random bits, no two alike', () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => newId(7)));
    expect(ids.size).toBe(10_000);
  });

  it('usernames spread evenly over the shards (the directory is their hash), and a name always lands on one', () => {
    const counts = new Array<number>(logicalShards).fill(0);
    const n = 64_000;
    for (let i = 0; i < n; i++) counts[shardOfUsername(`user_${i}`)] = (counts[shardOfUsername(`user_${i}`)] ?? 0) + 1;
    const mean = n / logicalShards;
    expect(Math.max(...counts) / mean).toBeLessThan(1.1);
    expect(Math.min(...counts) / mean).toBeGreaterThan(0.9);
    expect(shardOfUsername('alice')).toBe(shardOfUsername('alice'));
  });
});

describe('the shard map', () => {
  it('deals the logical shards out over the clusters in near-equal ranges', () => {
    const map = initialShardMap(['pg-a', 'pg-b']);
    expect(map.version).toBe(1);
    expect(map.clusters.filter((c) => c === 'pg-a')).toHaveLength(32);
    expect(map.clusters.slice(0, 32).every((c) => c === 'pg-a')).toBe(true);
    const three = initialShardMap(['a', 'b', 'c']);
    expect(['a', 'b', 'c'].map((c) => three.clusters.filter((x) => x === c).length).sort()).toEqual([21, 21, 22]);
  });

  it('adding a third cluster moves about a third of the shards, all to it, and evens the three out', () => {
    const map = initialShardMap(['pg-a', 'pg-b']);
    const moves = rebalancePlan(map, ['pg-a', 'pg-b', 'pg-c']);
    expect(moves.length).toBe(21);
    expect(moves.every((m) => m.to === 'pg-c')).toBe(true);
    const after = [...map.clusters];
    for (const m of moves) {
      expect(after[m.shard]).toBe(m.from);
      after[m.shard] = m.to;
    }
    const counts = ['pg-a', 'pg-b', 'pg-c'].map((c) => after.filter((x) => x === c).length).sort();
    expect(counts).toEqual([21, 21, 22]);
    // Balanced already: nothing to move.
    expect(rebalancePlan({ version: 2, clusters: after }, ['pg-a', 'pg-b', 'pg-c'])).toEqual([]);
  });

  it('a cluster left out of the plan is emptied onto the others', () => {
    const map = initialShardMap(['pg-a', 'pg-b', 'pg-c']);
    const moves = rebalancePlan(map, ['pg-a', 'pg-b']);
    expect(moves.every((m) => m.from === 'pg-c')).toBe(true);
    expect(moves.length).toBe(map.clusters.filter((c) => c === 'pg-c').length);
    expect(shardSchema(7)).toBe('shard_07');
  });
});
