import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TimelineEntry, TimelineStore } from '../../src/ports/timelines.ts';

export interface TimelineContractOptions {
  name: string;
  /** A store keeping at most `maxEntries` per timeline. */
  create(opts: { maxEntries: number }): Promise<TimelineStore>;
}

const id = () => randomBytes(12).toString('base64url');

/** What every TimelineStore adapter must do: the in-process one and the Redis one. */
export function runTimelineContract(opts: TimelineContractOptions): void {
  describe(`TimelineStore contract: ${opts.name}`, () => {
    let store: TimelineStore;
    const prefix = `t${Math.random().toString(36).slice(2)}:`;
    const owner = (name: string) => prefix + name;
    const built = async (name: string, entries: TimelineEntry[]) => {
      await store.beginBuild(owner(name));
      expect(await store.finishBuild(owner(name), entries, true)).toBe(true);
    };
    const ids = async (name: string, o: { before?: TimelineEntry; limit?: number } = {}) =>
      (await store.read(owner(name), { limit: o.limit ?? 100, before: o.before }))?.entries.map((e) => e.id);
    beforeEach(async () => {
      store = await opts.create({ maxEntries: 5 });
    });
    afterEach(async () => {
      await store.close();
    });

    it('a timeline never built reads as missing, and pushes do not create it', async () => {
      expect(await store.read(owner('none'), { limit: 10 })).toBeUndefined();
      await store.push([owner('none')], { id: id(), at: 1 });
      await store.merge(owner('none'), [{ id: id(), at: 2 }]);
      expect(await store.read(owner('none'), { limit: 10 })).toBeUndefined();
    });

    it('reads newest first by (time, id), pages strictly below a cursor, and keeps ties in id order', async () => {
      const [a, b, c, d] = ['AAAAAAAAAAAAAAAA', 'BBBBBBBBBBBBBBBB', 'CCCCCCCCCCCCCCCC', 'DDDDDDDDDDDDDDDD'];
      await built('order', [
        { id: a, at: 100 },
        { id: c, at: 300 },
        { id: b, at: 200 },
        { id: d, at: 200 },
      ]);
      expect(await ids('order')).toEqual([c, d, b, a]);
      const first = await store.read(owner('order'), { limit: 2 });
      expect(first).toEqual({
        entries: [
          { id: c, at: 300 },
          { id: d, at: 200 },
        ],
        complete: true,
      });
      expect(await ids('order', { before: { id: d, at: 200 }, limit: 2 })).toEqual([b, a]);
      expect(await ids('order', { before: { id: b, at: 200 } })).toEqual([a]);
      expect(await ids('order', { before: { id: a, at: 100 } })).toEqual([]);
    });

    it('an empty timeline, once built, reads as empty (not missing)', async () => {
      await built('empty', []);
      expect(await store.read(owner('empty'), { limit: 10 })).toEqual({ entries: [], complete: true });
    });

    it('pushes land in built and building timelines, once each, and keep the newest up to the cap', async () => {
      await built('cap', []);
      for (let at = 1; at <= 7; at++) await store.push([owner('cap')], { id: `id${String(at).padStart(14, '0')}`, at });
      await store.push([owner('cap')], { id: `id${String(7).padStart(14, '0')}`, at: 7 });
      const read = await store.read(owner('cap'), { limit: 100 });
      expect(read?.entries.map((e) => e.at)).toEqual([7, 6, 5, 4, 3]);
      expect(read?.complete).toBe(false);
    });

    it('a push during a build is not lost to it', async () => {
      await store.beginBuild(owner('race'));
      const pushed = { id: id(), at: 50 };
      await store.push([owner('race')], pushed);
      // Not readable until built.
      expect(await store.read(owner('race'), { limit: 10 })).toBeUndefined();
      expect(await store.finishBuild(owner('race'), [{ id: id(), at: 10 }], true)).toBe(true);
      expect((await store.read(owner('race'), { limit: 10 }))?.entries).toContainEqual(pushed);
    });

    it('a build read from a capped query is not complete', async () => {
      await store.beginBuild(owner('capped'));
      await store.finishBuild(owner('capped'), [{ id: id(), at: 1 }], false);
      expect((await store.read(owner('capped'), { limit: 10 }))?.complete).toBe(false);
    });

    it('unmerge takes entries out of a built timeline, and drops one still building so its build stores nothing', async () => {
      const [x, y] = [id(), id()];
      await built('unmerge', [
        { id: x, at: 1 },
        { id: y, at: 2 },
      ]);
      await store.unmerge(owner('unmerge'), [x]);
      expect(await ids('unmerge')).toEqual([y]);

      await store.beginBuild(owner('unmerging'));
      await store.unmerge(owner('unmerging'), [x]);
      expect(await store.finishBuild(owner('unmerging'), [{ id: x, at: 1 }], true)).toBe(false);
      expect(await store.read(owner('unmerging'), { limit: 10 })).toBeUndefined();
    });

    it('merge adds entries to a timeline that exists; remove and drop take them away', async () => {
      const [x, y, z] = [id(), id(), id()];
      await built('merge', [{ id: x, at: 1 }]);
      await store.merge(owner('merge'), [
        { id: y, at: 3 },
        { id: z, at: 2 },
      ]);
      expect(await ids('merge')).toEqual([y, z, x]);
      await store.remove([owner('merge'), owner('elsewhere')], z);
      expect(await ids('merge')).toEqual([y, x]);
      await store.drop(owner('merge'));
      expect(await store.read(owner('merge'), { limit: 10 })).toBeUndefined();
    });

    it('one push reaches many timelines', async () => {
      const owners = Array.from({ length: 1200 }, (_, i) => `many${i}`);
      for (const o of owners.slice(0, 600)) await built(o, []);
      const entry = { id: id(), at: 9 };
      await store.push(owners.map(owner), entry);
      expect(await ids('many0')).toEqual([entry.id]);
      expect(await ids('many599')).toEqual([entry.id]);
      expect(await store.read(owner('many600'), { limit: 1 })).toBeUndefined();
    });
  });
}
