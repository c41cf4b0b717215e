import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createBullmqQueue } from '../../src/platform/queue/bullmq.ts';
import { connectRedis } from '../../src/platform/redis/connect.ts';
import { runQueueContract } from './queue.contract.ts';

const { host, port } = inject('redis');
const connections: ReturnType<typeof connectRedis>[] = [];
const connect = () => {
  const c = connectRedis({ host, port }, { maxRetriesPerRequest: null, enableAutoPipelining: false });
  connections.push(c);
  return c;
};
afterAll(() => {
  for (const c of connections) c.disconnect();
});
/** A queue of its own key prefix on the test run's Redis. */
const bullmq = (attempts: number, prefix = `test-${randomBytes(6).toString('hex')}`) =>
  createBullmqQueue({ connect, prefix, attempts, backoffMs: 10, lockMs: 1000, stalledCheckMs: 500 });

runQueueContract({ name: 'BullMQ on Redis', create: async ({ attempts }) => bullmq(attempts) });

describe('BullMQ queue: what only a shared queue does', () => {
  it('hands a job to a consumer in another queue instance (another process)', async () => {
    const prefix = `test-${randomBytes(6).toString('hex')}`;
    const producer = bullmq(3, prefix);
    const consumer = bullmq(3, prefix);
    const seen: string[] = [];
    consumer.process('photo.variants', async ({ photoId }) => {
      seen.push(photoId);
    });
    await producer.enqueue('photo.variants', { photoId: 'across' });
    const end = Date.now() + 5000;
    while (seen.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual(['across']);
    await Promise.all([producer.close(), consumer.close()]);
  });

  it('adds a completed job again only when told to (the sweeper)', async () => {
    const q = bullmq(3);
    let runs = 0;
    q.process('photo.variants', async () => {
      runs++;
    });
    await q.enqueue('photo.variants', { photoId: 's' }, { jobId: 'sweep-1' });
    const waitRuns = async (n: number) => {
      const end = Date.now() + 5000;
      while (runs < n && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    };
    await waitRuns(1);
    await new Promise((r) => setTimeout(r, 100));
    // A completed job is kept for a while, and its id is taken: a plain enqueue does nothing.
    await q.enqueue('photo.variants', { photoId: 's' }, { jobId: 'sweep-1' });
    await new Promise((r) => setTimeout(r, 300));
    expect(runs).toBe(1);
    await q.enqueue('photo.variants', { photoId: 's' }, { jobId: 'sweep-1', replaceFinished: true });
    await waitRuns(2);
    expect(runs).toBe(2);
    await q.close();
  });
});
