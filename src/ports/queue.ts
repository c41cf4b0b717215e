/** The jobs of the app, with their payloads. */
export interface JobPayloads {
  'photo.variants': { photoId: string };
}
export type JobName = keyof JobPayloads;

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
  depth(): Promise<{ waiting: number; active: number; failed: number }>;
  /** Stops taking jobs and waits for running ones. */
  close(): Promise<void>;
}
