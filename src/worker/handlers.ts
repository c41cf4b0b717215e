import type { Logger } from 'pino';
import type { PhotoService } from '../app/photos/service.ts';
import type { BusinessMetrics } from '../ports/metrics.ts';
import type { JobContext, JobName, JobQueue } from '../ports/queue.ts';

export interface JobHandlerDeps {
  queue: JobQueue;
  photos: PhotoService;
  metrics: BusinessMetrics;
  logger: Logger;
  /** Photo variants at once per process (each holds a libvips thread). */
  concurrency: number;
}

/** Runs one job with its log line and its duration in the job histogram. */
async function timed(
  d: JobHandlerDeps,
  name: JobName,
  fields: Record<string, unknown>,
  ctx: JobContext,
  run: () => Promise<void>,
) {
  const started = performance.now();
  const log = d.logger.child({ job: name, ...fields, attempt: ctx.attempt, reqId: ctx.requestId });
  log.info(`${name} started`);
  try {
    await run();
    d.metrics.jobDone(name, (performance.now() - started) / 1000, 'ok');
    log.info({ ms: Math.round(performance.now() - started) }, `${name} done`);
  } catch (err) {
    const final = ctx.attempt >= ctx.maxAttempts;
    d.metrics.jobDone(name, (performance.now() - started) / 1000, final ? 'failed' : 'retry');
    log.warn({ err, final }, final ? `${name} failed for good: into the dead letter` : `${name} failed; will retry`);
    throw err;
  }
}

/**
 * Registers the app's job handlers: a photo's variants, its fan-out into the
 * followers' timelines (then ready), and an edge's second purge. Each is safe
 * to run twice: a photo no longer processing is left alone, a purge of what
 * is gone purges nothing.
 */
export function startJobHandlers(d: JobHandlerDeps): void {
  const { queue, photos } = d;
  queue.process(
    'photo.variants',
    ({ photoId }, ctx) => timed(d, 'photo.variants', { photoId }, ctx, () => photos.makeVariants(photoId, ctx)),
    { concurrency: d.concurrency },
  );
  queue.process(
    'feed.fanout',
    ({ photoId, variants }, ctx) =>
      timed(d, 'feed.fanout', { photoId }, ctx, () => photos.publish(photoId, variants, ctx)),
    { concurrency: 4 },
  );
  queue.process('edge.purge', ({ tag }, ctx) => timed(d, 'edge.purge', { tag }, ctx, () => photos.purgeEdge(tag)), {
    concurrency: 4,
  });
}

/**
 * The sweeper of a shared queue: every `everySeconds` (with jitter, so that
 * workers do not sweep together), every photo processing for longer than
 * `afterSeconds` is enqueued again unless its job is still queued or running.
 * PostgreSQL is the jobs' record, Redis only their transport: whatever Redis
 * loses (an asynchronous replica promoted, a job deleted by hand) comes back
 * within `afterSeconds` and 1.25 × `everySeconds` (the jitter) more.
 */
export function startSweeper(o: { photos: PhotoService; logger: Logger; afterSeconds: number; everySeconds: number }): {
  stop(): void;
} {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const sweep = async () => {
    try {
      const n = await o.photos.resumeProcessing(o.afterSeconds);
      if (n > 0)
        o.logger.info(
          { photos: n, afterSeconds: o.afterSeconds },
          'sweeper: photos processing too long enqueued again',
        );
    } catch (err) {
      o.logger.warn({ err }, 'sweeper: the sweep failed; trying again next period');
    }
    schedule();
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => void sweep(), o.everySeconds * 1000 * (0.75 + Math.random() * 0.5));
    timer.unref();
  };
  schedule();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
