import { describe, expect, it } from 'vitest';
import { idPattern, newId } from '../../src/app/ids.ts';
import { logicalShards, shardOfId, shardOfUsername } from '../../src/ports/shards.ts';

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
