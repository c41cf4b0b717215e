import { expect, it } from 'vitest';
import { createMemoryTimelineStore } from '../../src/platform/timelines/memory.ts';
import { runTimelineContract } from './timelines.contract.ts';

runTimelineContract({
  name: 'in-process',
  create: async ({ maxEntries }) => createMemoryTimelineStore({ maxEntries, maxTimelines: 10_000, ttlSeconds: 3600 }),
});

it('in-process timelines expire when not read, and the least recently read go first past the bound', async () => {
  let now = 0;
  const store = createMemoryTimelineStore({ maxEntries: 10, maxTimelines: 2, ttlSeconds: 10, now: () => now });
  for (const o of ['a', 'b']) {
    await store.beginBuild(o);
    await store.finishBuild(o, [], true);
  }
  now = 5_000;
  await store.read('a', { limit: 1 });
  now = 12_000;
  expect(await store.read('a', { limit: 1 })).toBeDefined();
  expect(await store.read('b', { limit: 1 })).toBeUndefined();
  await store.beginBuild('c');
  await store.finishBuild('c', [], true);
  await store.beginBuild('d');
  await store.finishBuild('d', [], true);
  expect(await store.read('a', { limit: 1 })).toBeUndefined();
  expect(await store.read('d', { limit: 1 })).toBeDefined();
});
