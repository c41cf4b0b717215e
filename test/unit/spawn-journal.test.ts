import { describe, expect, it } from 'vitest';
import { isAlive, startProcess, stopProcess, withSpawnJournal } from '../../src/cluster/process.ts';

describe('the spawn journal (what a failed restart stops)', () => {
  it("gives each start only the processes it spawned, though two run at once, none of the other's", async () => {
    const a: number[] = [];
    const b: number[] = [];
    const spawnAfter = async (ms: number) => {
      await new Promise((r) => setTimeout(r, ms));
      return startProcess({ command: '/bin/sleep', args: ['30'], log: '/dev/null' }).pid;
    };
    const [pa, pb] = await Promise.all([
      withSpawnJournal(a, () => spawnAfter(20)),
      withSpawnJournal(b, async () => [await spawnAfter(5), await spawnAfter(30)]),
    ]);
    const outside = startProcess({ command: '/bin/sleep', args: ['30'], log: '/dev/null' }).pid;
    try {
      expect(a).toEqual([pa]);
      expect(b).toEqual(pb);
      expect([...a, ...b]).not.toContain(outside);
    } finally {
      for (const pid of [...a, ...b, outside]) await stopProcess(pid, 1000);
    }
    for (const pid of [...a, ...b, outside]) expect(isAlive(pid)).toBe(false);
  });
});
