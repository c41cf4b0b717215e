import { Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  type EnqueueOptions,
  type FailedJob,
  type JobName,
  type JobQueue,
  jobNames,
  type QueueDepth,
} from '../../ports/queue.ts';
import { currentRequestId } from '../observability/context.ts';

export interface BullmqQueueOptions {
  /**
   * A new connection to the durable Redis (through Sentinel), with
   * `maxRetriesPerRequest: null`: BullMQ's workers wait out a failover. Each
   * queue and each worker gets its own; a worker duplicates it for its
   * blocking reads.
   */
  connect(): Redis;
  /** The key prefix (one topology's queues). */
  prefix: string;
  attempts: number;
  /** The first retry's delay; each next one doubles it. */
  backoffMs: number;
  /**
   * A job's lock: renewed every half of it while the job runs, so a worker
   * that dies (SIGKILL) leaves a lock that expires within this long.
   * BullMQ's default is 30 s.
   */
  lockMs?: number;
  /** How often each worker looks for jobs whose lock expired, and puts them back (BullMQ: 30 s). */
  stalledCheckMs?: number;
  /** A job whose worker died more often than this fails (a photo that kills its worker every time). */
  maxStalled?: number;
  /** Completed jobs kept (for a look on the dashboard) at most this long and this many. */
  keepCompleted?: { seconds: number; count: number };
  /** The dead letter: failed jobs kept this long and this many. */
  keepFailed?: { seconds: number; count: number };
  onError?: (name: string, err: unknown, attempt: number) => void;
}

interface JobData {
  payload: unknown;
  requestId?: string;
  /** Whose job it is (the fairness set it is counted in). */
  group?: string;
}

/** The key prefix of the site's queues. */
export const siteQueuePrefix = 'scaleout';

/** BullMQ's highest priority number (the lowest priority). */
const lowestPriority = 2_097_151;

/**
 * The queue on the durable Redis, with BullMQ: one BullMQ queue per job
 * name, so purges and fan-outs never wait behind image work.
 *
 * Fair turns without BullMQ Pro's groups: every job has a priority, the
 * number of its group's (its user's) jobs in the queue when it was added,
 * itself included. A user's first job is priority 1, their tenth 10; BullMQ
 * runs lower numbers first and equal ones in order. So one user's burst of
 * a hundred uploads takes turns with everyone else's first upload instead of
 * going before them. The count is a Redis set per group (job ids in, out
 * when the job finishes); a lost job leaves a stale member, which only
 * lowers its group's turns until the set expires (an hour after its last
 * change).
 *
 * Locks are short (5 s, checked every 2 s), so a worker killed mid-job has
 * its job retried within seconds. Completed jobs are removed after an hour
 * (or past 1,000); failed ones stay a week as the dead letter.
 */
export function createBullmqQueue(o: BullmqQueueOptions): JobQueue {
  const connection = o.connect();
  const queues = new Map<JobName, Queue>();
  const workers: Worker[] = [];
  let closed = false;
  const queueOf = (name: JobName): Queue => {
    let q = queues.get(name);
    if (!q) {
      q = new Queue(name, { connection, prefix: o.prefix });
      q.on('error', () => {});
      queues.set(name, q);
    }
    return q;
  };
  const fairKey = (group: string) => `${o.prefix}:fair:${group}`;
  const keepCompleted = o.keepCompleted ?? { seconds: 3600, count: 1000 };
  const keepFailed = o.keepFailed ?? { seconds: 7 * 86_400, count: 10_000 };

  /** The group's jobs in the queue, this one included: its priority. */
  const turnOf = async (group: string, jobId: string): Promise<number> => {
    const result = await connection
      .multi()
      .sadd(fairKey(group), jobId)
      .scard(fairKey(group))
      .expire(fairKey(group), 3600)
      .exec();
    const count = Number(result?.[1]?.[1] ?? 1);
    return Math.min(lowestPriority, Math.max(1, count));
  };
  const leave = async (data: JobData, jobId: string | undefined) => {
    if (data.group && jobId) await connection.srem(fairKey(data.group), jobId).catch(() => {});
  };

  return {
    shared: true,
    async enqueue(name, payload, opts: EnqueueOptions = {}) {
      if (closed) throw new Error('queue is closed');
      const q = queueOf(name);
      const jobId = opts.jobId ?? `${name}-${crypto.randomUUID()}`;
      if (opts.replaceFinished && opts.jobId) {
        // A failed one stays in the dead letter: a retry from there runs it again.
        if ((await q.getJobState(jobId)) === 'completed') await q.remove(jobId);
      }
      const priority = opts.group ? await turnOf(opts.group, jobId) : 1;
      const data: JobData = { payload, requestId: currentRequestId(), group: opts.group };
      await q.add(name, data, {
        jobId,
        priority,
        delay: opts.delayMs,
        attempts: o.attempts,
        backoff: { type: 'exponential', delay: o.backoffMs },
        removeOnComplete: { age: keepCompleted.seconds, count: keepCompleted.count },
        removeOnFail: { age: keepFailed.seconds, count: keepFailed.count },
      });
    },
    process(name, handler, opts = {}) {
      if (workers.some((w) => w.name === name)) throw new Error(`a handler for ${name} is already registered`);
      const worker = new Worker(
        name,
        async (job: Job<JobData>) => {
          const attempt = job.attemptsMade + 1;
          const maxAttempts = job.opts.attempts ?? o.attempts;
          try {
            await handler(job.data.payload as never, { attempt, maxAttempts, requestId: job.data.requestId });
          } catch (err) {
            o.onError?.(name, err, attempt);
            if (attempt >= maxAttempts) await leave(job.data, job.id);
            throw err;
          }
          await leave(job.data, job.id);
        },
        {
          connection: o.connect(),
          prefix: o.prefix,
          concurrency: opts.concurrency ?? 1,
          lockDuration: o.lockMs ?? 5000,
          stalledInterval: o.stalledCheckMs ?? 2000,
          maxStalledCount: o.maxStalled ?? 2,
        },
      );
      worker.on('error', () => {});
      workers.push(worker);
    },
    async depth(): Promise<QueueDepth> {
      const total: QueueDepth = { waiting: 0, active: 0, delayed: 0, failed: 0 };
      await Promise.all(
        jobNames.map(async (name) => {
          const q = queueOf(name);
          const counts = await q.getJobCounts('wait', 'prioritized', 'active', 'delayed', 'failed');
          // Delayed jobs are scored by when they are due (ms × 4096 + a counter): count those due now.
          const due = await connection.zcount(
            q.keys.delayed ?? `${o.prefix}:${name}:delayed`,
            '-inf',
            (Date.now() + 1) * 0x1000 - 1,
          );
          total.waiting += (counts.wait ?? 0) + (counts.prioritized ?? 0) + due;
          total.active += counts.active ?? 0;
          total.delayed += Math.max(0, (counts.delayed ?? 0) - due);
          total.failed += counts.failed ?? 0;
        }),
      );
      return total;
    },
    async failed(limit = 50) {
      const lists = await Promise.all(jobNames.map((name) => queueOf(name).getFailed(0, limit - 1)));
      return lists
        .flat()
        .map(
          (job): FailedJob => ({
            id: job.id ?? '',
            name: job.name as JobName,
            payload: (job.data as JobData).payload,
            attempts: job.attemptsMade,
            reason: job.failedReason,
            failedAt: job.finishedOn ?? job.timestamp,
          }),
        )
        .sort((a, b) => b.failedAt - a.failedAt)
        .slice(0, limit);
    },
    async retry(id) {
      for (const name of jobNames) {
        const q = queueOf(name);
        if ((await q.getJobState(id)) !== 'failed') continue;
        const job = await Job.fromId<JobData>(q, id);
        if (!job) return false;
        await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
        return true;
      }
      return false;
    },
    async close() {
      // Each worker finishes its active jobs and takes no new ones, in the order they were registered
      // (a photo's variants, then its fan-out): a step that ends enqueues the next while that one's worker still takes jobs.
      for (const w of workers) await w.close();
      closed = true;
      await Promise.all([...queues.values()].map((q) => q.close()));
      connection.disconnect();
    },
  };
}
