import type { Logger } from 'pino';
import type { PhotoService } from '../app/photos/service.ts';
import type { BusinessMetrics } from '../ports/metrics.ts';
import type { JobQueue } from '../ports/queue.ts';

/** Registers the handler that turns an uploaded original into its variants. */
export function startPhotoWorker(deps: {
  queue: JobQueue;
  photos: PhotoService;
  metrics: BusinessMetrics;
  logger: Logger;
  concurrency: number;
}): void {
  const { queue, photos, metrics, logger, concurrency } = deps;
  queue.process(
    'photo.variants',
    async ({ photoId }, ctx) => {
      const started = performance.now();
      const log = logger.child({ job: 'photo.variants', photoId, attempt: ctx.attempt, reqId: ctx.requestId });
      try {
        await photos.makeVariants(photoId, ctx);
        metrics.jobDone('photo.variants', (performance.now() - started) / 1000, 'ok');
        log.info({ ms: Math.round(performance.now() - started) }, 'variants made');
      } catch (err) {
        const final = ctx.attempt >= ctx.maxAttempts;
        metrics.jobDone('photo.variants', (performance.now() - started) / 1000, final ? 'failed' : 'retry');
        log.warn({ err, final }, final ? 'variants failed; photo marked failed' : 'variants failed; will retry');
        throw err;
      }
    },
    { concurrency },
  );
}
