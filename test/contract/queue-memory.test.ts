import { describe, expect, it } from 'vitest';
import { createMemoryQueue } from '../../src/platform/queue/memory.ts';
import { runQueueContract } from './queue.contract.ts';

runQueueContract({
  name: 'in-process',
  create: async ({ attempts }) => createMemoryQueue({ attempts, backoffMs: 10 }),
});

describe('in-process queue: fair turns between users', () => {
  it('runs one user’s job between another user’s many, instead of after them all', async () => {
    const queue = createMemoryQueue({ attempts: 1, backoffMs: 10 });
    const order: string[] = [];
    // Ten jobs of a user who uploaded in a burst, then one of somebody else.
    for (let i = 0; i < 10; i++) {
      await queue.enqueue('photo.variants', { photoId: `burst-${i}` }, { jobId: `burst-${i}`, group: 'burst' });
    }
    await queue.enqueue('photo.variants', { photoId: 'other' }, { jobId: 'other', group: 'other' });
    const done = new Promise<void>((resolve) => {
      queue.process(
        'photo.variants',
        async ({ photoId }) => {
          order.push(photoId);
          await new Promise((r) => setTimeout(r, 2));
          if (order.length === 11) resolve();
        },
        { concurrency: 1 },
      );
    });
    await done;
    await queue.close();
    expect(order.indexOf('other')).toBeLessThanOrEqual(1);
    expect(order.filter((id) => id.startsWith('burst-'))).toEqual(Array.from({ length: 10 }, (_, i) => `burst-${i}`));
  });
});
