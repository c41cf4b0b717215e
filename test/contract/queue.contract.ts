import { afterEach, describe, expect, it } from 'vitest';
import type { JobQueue } from '../../src/ports/queue.ts';

export interface QueueContractOptions {
  name: string;
  /** A fresh queue (unique name) that tries each job `attempts` times, with a short backoff. */
  create(opts: { attempts: number }): Promise<JobQueue>;
}

const waitFor = async (check: () => boolean | Promise<boolean>, ms = 5000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('timed out waiting');
};

/** What every JobQueue must do: in-process now, BullMQ on Redis in the queue stage. */
export function runQueueContract(opts: QueueContractOptions): void {
  describe(`JobQueue contract: ${opts.name}`, () => {
    const open: JobQueue[] = [];
    const create = async (attempts = 3) => {
      const q = await opts.create({ attempts });
      open.push(q);
      return q;
    };
    afterEach(async () => {
      await Promise.all(open.splice(0).map((q) => q.close()));
    });

    it('keeps jobs enqueued while no consumer runs, then runs each once', async () => {
      const q = await create();
      await q.enqueue('photo.variants', { photoId: 'a' });
      await q.enqueue('photo.variants', { photoId: 'b' });
      const seen: string[] = [];
      q.process('photo.variants', async ({ photoId }) => {
        seen.push(photoId);
      });
      await waitFor(() => seen.length === 2);
      await new Promise((r) => setTimeout(r, 100));
      expect(seen.sort()).toEqual(['a', 'b']);
    });

    it('retries a failing job with increasing attempt numbers until it succeeds', async () => {
      const q = await create(3);
      const attempts: number[] = [];
      q.process('photo.variants', async (_p, ctx) => {
        attempts.push(ctx.attempt);
        expect(ctx.maxAttempts).toBe(3);
        if (ctx.attempt < 3) throw new Error('transient');
      });
      await q.enqueue('photo.variants', { photoId: 'r' });
      await waitFor(() => attempts.length === 3);
      await new Promise((r) => setTimeout(r, 100));
      expect(attempts).toEqual([1, 2, 3]);
      expect((await q.depth()).failed).toBe(0);
    });

    it('gives up after the last attempt and counts the job as failed', async () => {
      const q = await create(2);
      let runs = 0;
      q.process('photo.variants', async () => {
        runs++;
        throw new Error('permanent');
      });
      await q.enqueue('photo.variants', { photoId: 'f' });
      await waitFor(async () => (await q.depth()).failed === 1);
      expect(runs).toBe(2);
    });

    it('does not add a job twice while one with the same id is pending', async () => {
      const q = await create();
      await q.enqueue('photo.variants', { photoId: 'd' }, { jobId: 'same' });
      await q.enqueue('photo.variants', { photoId: 'd' }, { jobId: 'same' });
      let runs = 0;
      q.process('photo.variants', async () => {
        runs++;
      });
      await waitFor(() => runs >= 1);
      await new Promise((r) => setTimeout(r, 150));
      expect(runs).toBe(1);
    });

    it('runs no more jobs at once than the concurrency allows', async () => {
      const q = await create();
      let active = 0;
      let peak = 0;
      let done = 0;
      q.process(
        'photo.variants',
        async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setTimeout(r, 30));
          active--;
          done++;
        },
        { concurrency: 2 },
      );
      for (let i = 0; i < 6; i++) await q.enqueue('photo.variants', { photoId: `c${i}` });
      await waitFor(() => done === 6);
      expect(peak).toBe(2);
    });

    it('runs a delayed job no sooner than its delay', async () => {
      const q = await create();
      let ranAt = 0;
      q.process('edge.purge', async () => {
        ranAt = Date.now();
      });
      const added = Date.now();
      await q.enqueue('edge.purge', { tag: 'photo-x' }, { delayMs: 300 });
      await waitFor(() => ranAt > 0);
      expect(ranAt - added).toBeGreaterThanOrEqual(290);
    });

    it('keeps a job that failed its last attempt in the dead letter, and runs it again on retry', async () => {
      const q = await create(2);
      let runs = 0;
      let healed = false;
      q.process('photo.variants', async () => {
        runs++;
        if (!healed) throw new Error('poison');
      });
      await q.enqueue('photo.variants', { photoId: 'p' }, { jobId: 'poison-1' });
      await waitFor(async () => (await q.failed()).length === 1);
      const [dead] = await q.failed();
      expect(dead).toMatchObject({ id: 'poison-1', name: 'photo.variants', payload: { photoId: 'p' }, attempts: 2 });
      expect(dead?.reason).toContain('poison');
      expect(runs).toBe(2);
      healed = true;
      expect(await q.retry('poison-1')).toBe(true);
      await waitFor(() => runs === 3);
      await waitFor(async () => (await q.failed()).length === 0);
      expect(await q.retry('no-such-job')).toBe(false);
    });

    it('counts waiting and active jobs in its depth', async () => {
      const q = await create();
      for (let i = 0; i < 4; i++) await q.enqueue('photo.variants', { photoId: `w${i}` }, { group: `u${i}` });
      await waitFor(async () => (await q.depth()).waiting === 4);
      let release = () => {};
      const hold = new Promise<void>((r) => {
        release = r;
      });
      q.process('photo.variants', () => hold, { concurrency: 2 });
      await waitFor(async () => {
        const d = await q.depth();
        return d.active === 2 && d.waiting === 2;
      });
      release();
      await waitFor(async () => {
        const d = await q.depth();
        return d.active === 0 && d.waiting === 0;
      });
    });

    it('runs one user’s job between another user’s many, instead of after them all', async () => {
      const q = await create(1);
      const order: string[] = [];
      // Ten jobs of a user who uploaded in a burst, then one of somebody else.
      for (let i = 0; i < 10; i++) {
        await q.enqueue('photo.variants', { photoId: `burst-${i}` }, { jobId: `burst-${i}`, group: 'burst' });
      }
      await q.enqueue('photo.variants', { photoId: 'other' }, { jobId: 'other', group: 'other' });
      q.process(
        'photo.variants',
        async ({ photoId }) => {
          order.push(photoId);
          await new Promise((r) => setTimeout(r, 2));
        },
        { concurrency: 1 },
      );
      await waitFor(() => order.length === 11);
      expect(order.indexOf('other')).toBeLessThanOrEqual(1);
      expect(order.filter((id) => id.startsWith('burst-'))).toEqual(Array.from({ length: 10 }, (_, i) => `burst-${i}`));
    });

    it('waits for a running job when closed', async () => {
      const q = await create();
      let finished = false;
      let started = false;
      q.process('photo.variants', async () => {
        started = true;
        await new Promise((r) => setTimeout(r, 100));
        finished = true;
      });
      await q.enqueue('photo.variants', { photoId: 'x' });
      await waitFor(() => started);
      await q.close();
      expect(finished).toBe(true);
    });
  });
}
