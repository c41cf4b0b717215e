import type { EnqueueOptions, FailedJob, JobHandler, JobName, JobPayloads, JobQueue } from '../../ports/queue.ts';
import { currentRequestId } from '../observability/context.ts';

export interface MemoryQueueOptions {
  attempts: number;
  backoffMs: number;
  onError?: (name: string, err: unknown, attempt: number) => void;
  /** How many failed jobs the dead letter keeps (the oldest go first). */
  keepFailed?: number;
}

interface Job {
  name: JobName;
  payload: unknown;
  jobId: string | undefined;
  attempt: number;
  requestId: string | undefined;
  group: string | undefined;
}

/**
 * An in-process queue with retries and exponential backoff. Groups (users)
 * take turns, so one user's many jobs cannot hold everyone else's back. It is not
 * durable: work that must survive a crash is re-enqueued from the database at
 * start (see the photo service's `resumeProcessing`).
 */
export function createMemoryQueue(options: MemoryQueueOptions): JobQueue {
  const waiting: Job[] = [];
  const pendingIds = new Set<string>();
  const handlers = new Map<JobName, { handler: JobHandler<JobName>; concurrency: number; active: number }>();
  const running = new Set<Promise<void>>();
  const timers = new Set<NodeJS.Timeout>();
  const deadLetter: (FailedJob & { job: Job })[] = [];
  let delayed = 0;
  let closed = false;
  let sequence = 0;

  // Fair turns: the next job is the waiting one whose group was served longest ago (FIFO among equals).
  const lastServed = new Map<string, number>();
  let tick = 0;
  const nextJob = (): number => {
    let best = -1;
    let bestServed = Number.POSITIVE_INFINITY;
    for (let i = 0; i < waiting.length; i++) {
      const job = waiting[i] as Job;
      const worker = handlers.get(job.name);
      if (!worker || worker.active >= worker.concurrency) continue;
      const served = job.group === undefined ? -1 : (lastServed.get(job.group) ?? -1);
      if (served < bestServed) {
        best = i;
        bestServed = served;
      }
    }
    return best;
  };

  const pump = () => {
    if (closed) return;
    for (let i = nextJob(); i >= 0; i = nextJob()) {
      const [job] = waiting.splice(i, 1) as [Job];
      if (job.group !== undefined) lastServed.set(job.group, ++tick);
      const worker = handlers.get(job.name) as { handler: JobHandler<JobName>; active: number };
      worker.active++;
      const run = execute(job, worker.handler).finally(() => {
        worker.active--;
        running.delete(run);
        pump();
      });
      running.add(run);
    }
  };

  const execute = async (job: Job, handler: JobHandler<JobName>) => {
    try {
      await handler(job.payload as JobPayloads[JobName], {
        attempt: job.attempt,
        maxAttempts: options.attempts,
        requestId: job.requestId,
      });
      if (job.jobId) pendingIds.delete(job.jobId);
    } catch (err) {
      options.onError?.(job.name, err, job.attempt);
      if (job.attempt >= options.attempts || closed) {
        if (job.jobId) pendingIds.delete(job.jobId);
        deadLetter.unshift({
          id: job.jobId ?? `job-${++sequence}`,
          name: job.name,
          payload: job.payload,
          attempts: job.attempt,
          reason: err instanceof Error ? err.message : String(err),
          failedAt: Date.now(),
          job,
        });
        if (deadLetter.length > (options.keepFailed ?? 1000)) deadLetter.pop();
        return;
      }
      const delay = options.backoffMs * 2 ** (job.attempt - 1);
      const timer = setTimeout(() => {
        timers.delete(timer);
        waiting.push({ ...job, attempt: job.attempt + 1 });
        pump();
      }, delay);
      timers.add(timer);
    }
  };

  return {
    shared: false,
    async enqueue(name, payload, opts: EnqueueOptions = {}) {
      if (closed) throw new Error('queue is closed');
      if (opts.jobId) {
        if (pendingIds.has(opts.jobId)) return;
        pendingIds.add(opts.jobId);
      }
      const job: Job = {
        name,
        payload,
        jobId: opts.jobId,
        attempt: 1,
        requestId: currentRequestId(),
        group: opts.group,
      };
      if (opts.delayMs && opts.delayMs > 0) {
        delayed++;
        const timer = setTimeout(() => {
          timers.delete(timer);
          delayed--;
          waiting.push(job);
          pump();
        }, opts.delayMs);
        timers.add(timer);
        return;
      }
      waiting.push(job);
      queueMicrotask(pump);
    },
    process(name, handler, opts = {}) {
      if (handlers.has(name)) throw new Error(`a handler for ${name} is already registered`);
      handlers.set(name, {
        handler: handler as JobHandler<JobName>,
        concurrency: opts.concurrency ?? 1,
        active: 0,
      });
      queueMicrotask(pump);
    },
    async depth() {
      // Retries in their backoff are timers too: those count as waiting, as they always did here.
      return {
        waiting: waiting.length + timers.size - delayed,
        active: running.size,
        delayed,
        failed: deadLetter.length,
      };
    },
    async failed(limit = 50) {
      return deadLetter.slice(0, limit).map(({ job: _job, ...f }) => f);
    },
    async retry(id) {
      const i = deadLetter.findIndex((f) => f.id === id);
      if (i < 0 || closed) return false;
      const [entry] = deadLetter.splice(i, 1);
      if (!entry) return false;
      if (entry.job.jobId) pendingIds.add(entry.job.jobId);
      waiting.push({ ...entry.job, attempt: 1 });
      queueMicrotask(pump);
      return true;
    },
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await Promise.allSettled([...running]);
    },
  };
}
