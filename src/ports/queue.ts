import type { PhotoVariantRecord } from './db.ts';

/** The jobs of the app, with their payloads. */
export interface JobPayloads {
  /** An uploaded original → its thumb and display variants. */
  'photo.variants': { photoId: string };
  /** A photo whose variants exist → into its followers' timelines, then ready. */
  'feed.fanout': { photoId: string; variants: Record<string, PhotoVariantRecord> };
  /** A deleted photo's objects dropped from every edge once more (a fill may have raced the first purge). */
  'edge.purge': { tag: string };
}
export type JobName = keyof JobPayloads;
export const jobNames = ['photo.variants', 'feed.fanout', 'edge.purge'] as const satisfies readonly JobName[];

export interface JobContext {
  /** 1 for the first try. */
  attempt: number;
  /** The last attempt the queue will make. */
  maxAttempts: number;
  /** The request that enqueued the job, for its logs. */
  requestId?: string;
}

export type JobHandler<N extends JobName> = (payload: JobPayloads[N], ctx: JobContext) => Promise<void>;

export interface EnqueueOptions {
  /** A job with the same id that is still waiting or running is not added twice. */
  jobId?: string;
  /** Whose job it is (a user): waiting jobs of different groups take turns. */
  group?: string;
  /** Run it no sooner than this many milliseconds from now. */
  delayMs?: number;
  /**
   * Add it again even when a completed job with this id is still kept: the
   * sweeper's re-enqueue of work the database says is not done. (A failed
   * one stays in the dead letter, whose retry runs it again.)
   */
  replaceFinished?: boolean;
}

/** Jobs by state, summed over every job name. */
export interface QueueDepth {
  /** Ready to run now: waiting, prioritized, and delayed ones whose time has come. */
  waiting: number;
  active: number;
  /** Delayed ones not yet due (retries in their backoff, scheduled purges). */
  delayed: number;
  /** The dead letter: jobs that failed their last attempt and are kept. */
  failed: number;
}

/** A job in the dead letter. */
export interface FailedJob {
  id: string;
  name: JobName;
  payload: unknown;
  attempts: number;
  reason: string;
  failedAt: number;
}

/**
 * A job queue with retries. Producers enqueue while no consumer runs; a
 * consumer registered with `process` takes jobs as they come.
 */
export interface JobQueue {
  /** True when other processes see the same jobs (a queue server); false for an in-process queue. */
  readonly shared: boolean;
  enqueue<N extends JobName>(name: N, payload: JobPayloads[N], options?: EnqueueOptions): Promise<void>;
  process<N extends JobName>(name: N, handler: JobHandler<N>, options?: { concurrency?: number }): void;
  depth(): Promise<QueueDepth>;
  /** The dead letter, newest first. */
  failed(limit?: number): Promise<FailedJob[]>;
  /** Runs a dead-letter job again (its attempts start over); false when there is no such failed job. */
  retry(id: string): Promise<boolean>;
  /** Stops taking jobs and waits for running ones. */
  close(): Promise<void>;
}
