import type { BlobStore } from '../../ports/blobs.ts';
import type { Cache } from '../../ports/cache.ts';
import type { PhotoVariantRecord } from '../../ports/db.ts';
import type { Edge } from '../../ports/edge.ts';
import { type ImageProcessor, ImageTooCostlyError } from '../../ports/images.ts';
import type { BusinessMetrics } from '../../ports/metrics.ts';
import type { JobContext, JobQueue } from '../../ports/queue.ts';
import { shardOfId } from '../../ports/shards.ts';
import { AppError, forbidden, notFound, payloadTooLarge, unprocessable, unsupportedMediaType } from '../errors.ts';
import type { Timelines } from '../feed/timelines.ts';
import { newId } from '../ids.ts';
import { RateLimitedError, type Throttle } from '../throttle.ts';
import { profileCacheKey } from '../users/service.ts';
import { detectImageFormat, mimeTypes } from './image-type.ts';
import { likedByCached } from './liked.ts';
import type { PhotoRepository, PhotoRow } from './repository.ts';
import { type PhotoView, photoCacheKey, photoViews } from './views.ts';

/** The tag of every edge object of a photo (its variants). */
export const photoEdgeTag = (id: string) => `photo-${id}`;

export const originalKey = (id: string) => `photos/${id}/original`;
export const variantKey = (id: string, name: string) => `photos/${id}/${name}.webp`;

export interface PhotoLimits {
  maxBytes: number;
  maxPixels: number;
  /** Photos one user may have processing at once; more wait for a 429. */
  maxQueuedPerUser: number;
}

export function createPhotoService(deps: {
  photos: PhotoRepository;
  blobs: BlobStore;
  queue: JobQueue;
  images: ImageProcessor;
  cache: Cache;
  metrics: BusinessMetrics;
  throttle: Throttle;
  limits: PhotoLimits;
  /** Precomputed feeds, when this site keeps them. */
  timelines?: Timelines;
  /** The CDN edges, when the site has them: a deleted photo is purged from each. */
  edge?: Pick<Edge, 'purge' | 'enabled'>;
  /** Where "liked by me" is cached: `cache`, or nothing where web servers cannot tell each other of deletes. */
  viewerCache?: Cache;
  /** A job that could not be enqueued (its store is down): the sweeper enqueues it again from the database. */
  onEnqueueFailed?: (name: string, err: unknown) => void;
}) {
  const { photos, blobs, queue, images, cache, metrics, throttle, limits, timelines, edge } = deps;
  const viewerCache = deps.viewerCache ?? cache;
  /** Every blob a photo can have, whatever its row says: a delete leaves none behind. */
  const allKeys = (id: string) => [originalKey(id), variantKey(id, 'thumb'), variantKey(id, 'display')];

  /** The photo whatever its status: cached once settled, filled from the primary. */
  const load = async (id: string): Promise<PhotoView> => {
    const photo = (await photoViews(cache, photos, [id])).get(id);
    if (!photo) throw notFound('photo');
    return photo;
  };

  const forget = async (photo: { id: string; owner: string }) =>
    cache.delete(photoCacheKey(photo.id), profileCacheKey(photo.owner));

  /**
   * Enqueues work whose record is in the database (a photo `processing`):
   * when the queue's store is down, the work is not lost, the sweeper
   * (`resumeProcessing`) enqueues it again, so the caller goes on.
   */
  const enqueueRecorded: JobQueue['enqueue'] = async (name, payload, options) => {
    try {
      await queue.enqueue(name, payload, options);
    } catch (err) {
      metrics.enqueueFailed(name);
      deps.onEnqueueFailed?.(name, err);
    }
  };

  /**
   * One step of a photo's jobs: on the photo as the primary has it, only
   * while it is `processing` (a second run changes nothing); its last attempt
   * failing marks it `failed`; its cached entry is dropped either way.
   */
  const photoStep = async (photoId: string, ctx: JobContext, step: (photo: PhotoRow) => Promise<void>) => {
    const photo = await photos.get(photoId, true);
    if (photo?.status !== 'processing') return;
    try {
      await step(photo);
    } catch (err) {
      if (ctx.attempt >= ctx.maxAttempts) await photos.markFailed(photoId);
      throw err;
    } finally {
      await forget(photo);
    }
  };

  /** processing → ready, with the variants: the end of a photo's jobs. */
  const finish = async (photo: PhotoRow, records: Record<string, PhotoVariantRecord>) => {
    if (await photos.markReady(photo.id, records)) {
      metrics.photoReady((Date.now() - photo.createdAt.getTime()) / 1000);
    } else {
      // Deleted while we worked: leave nothing behind.
      await blobs.delete(...allKeys(photo.id));
    }
  };

  return {
    /** Stores the original and queues its variants; the photo is `processing` until they exist. */
    async upload(
      ownerId: string,
      file: { data: Buffer; caption: string },
      /** The request's Idempotency-Key: a second upload with it returns the first one's photo. */
      requestKey?: string,
    ): Promise<{ id: string; status: 'processing' | 'ready' | 'failed' }> {
      if (file.data.length > limits.maxBytes) throw payloadTooLarge(`the file is larger than ${limits.maxBytes} bytes`);
      await throttle.beforeUpload(ownerId);
      const overCap = () =>
        new RateLimitedError(
          `you have ${limits.maxQueuedPerUser} photos processing: upload more when they are ready`,
          5,
        );
      // A cheap early refusal; the insert below counts again, atomically.
      if ((await photos.countProcessing(ownerId)) >= limits.maxQueuedPerUser) throw overCap();
      const format = detectImageFormat(file.data);
      if (!format) throw unsupportedMediaType('the file is not a JPEG, PNG, WebP, AVIF or GIF image');
      let size: { width: number; height: number };
      try {
        size = await images.probe(file.data);
      } catch {
        throw unprocessable('the image could not be read');
      }
      if (size.width * size.height > limits.maxPixels) {
        throw payloadTooLarge(`the image has more than ${limits.maxPixels / 1e6} megapixels`);
      }
      const id = newId(shardOfId(ownerId));
      await blobs.put(originalKey(id), file.data, mimeTypes[format]);
      const createdAt = new Date();
      let created: Awaited<ReturnType<typeof photos.createWithinCap>>;
      try {
        created = await photos.createWithinCap(
          {
            id,
            ownerId,
            caption: file.caption,
            mimeType: mimeTypes[format],
            width: size.width,
            height: size.height,
            byteSize: file.data.length,
            createdAt,
            requestKey,
          },
          limits.maxQueuedPerUser,
        );
      } catch (err) {
        await blobs.delete(originalKey(id));
        throw err;
      }
      if (created !== 'created') {
        await blobs.delete(originalKey(id));
        if (created === 'over-cap') throw overCap();
        // The same upload again (its first answer was lost): the photo it made.
        return created;
      }
      await timelines?.uploaded({ id, ownerId, createdAt });
      // The row is the job's record: accepted even when the queue's store is down.
      await enqueueRecorded('photo.variants', { photoId: id }, { jobId: id, group: ownerId });
      metrics.upload();
      return { id, status: 'processing' };
    },

    /** A photo; one that is not ready yet (processing or failed) is its owner's alone: 404 for everyone else. */
    async get(id: string, viewerId: string | undefined): Promise<PhotoView> {
      const photo = await load(id);
      if (photo.status !== 'ready' && photo.ownerId !== viewerId) throw notFound('photo');
      return photo;
    },

    /**
     * A variant's bytes, or null. Only a ready photo's variants are served, so
     * files a job wrote for a photo deleted meanwhile never are.
     */
    async variant(id: string, name: 'thumb' | 'display') {
      const photo = await load(id).catch((err) => {
        if (err instanceof AppError && err.status === 404) return null;
        throw err;
      });
      if (photo?.status !== 'ready') return null;
      return blobs.get(variantKey(id, name));
    },

    likedBy: (userId: string, photoId: string) =>
      likedByCached(viewerCache, photos, userId, [photoId]).then((s) => s.has(photoId)),

    async delete(id: string, userId: string): Promise<void> {
      const photo = await photos.get(id, true);
      if (!photo) throw notFound('photo');
      if (photo.ownerId !== userId) throw forbidden('only the owner may delete a photo');
      if (!(await photos.delete(id, userId))) throw notFound('photo');
      await forget(photo);
      await timelines?.deleted(photo);
      // All keys, not the row's list: a job may have written variants after the row was read.
      await blobs.delete(...allKeys(id));
      // Out of every edge too, before the answer: nobody is served it from a cache again.
      if (edge?.enabled) {
        await edge.purge(photoEdgeTag(id));
        // And again in a second: a fill that left the origin before the delete may land after the first purge.
        await queue
          .enqueue('edge.purge', { tag: photoEdgeTag(id) }, { delayMs: 1000, jobId: `purge-${id}` })
          .catch((err) => deps.onEnqueueFailed?.('edge.purge', err));
      }
    },

    /** The job: drops a tag's objects from every edge. */
    async purgeEdge(tag: string): Promise<void> {
      await edge?.purge(tag);
    },

    /** The job: makes the variants of one photo. Safe to run twice. */
    makeVariants: (photoId: string, ctx: JobContext): Promise<void> =>
      photoStep(photoId, ctx, async (photo) => {
        const original = await blobs.get(originalKey(photoId));
        if (!original) throw new Error(`original of ${photoId} is missing`);
        let made: Awaited<ReturnType<typeof images.variants>>;
        try {
          made = await images.variants(original.data);
        } catch (err) {
          if (!(err instanceof ImageTooCostlyError)) throw err;
          // Too costly to decode: it would cost as much again, so the photo fails now.
          await photos.markFailed(photoId);
          await blobs.delete(originalKey(photoId));
          return;
        }
        const records: Record<string, PhotoVariantRecord> = {};
        for (const v of made) {
          const key = variantKey(photoId, v.name);
          await blobs.put(key, v.data, v.contentType);
          records[v.name] = { key, width: v.width, height: v.height, bytes: v.data.length };
        }
        // Into the followers' feeds first (a job of its own: a popular author's fan-out is long), then ready.
        // The photo stays processing until then, so a lost fan-out job is found by the sweeper.
        if (timelines) {
          await queue.enqueue(
            'feed.fanout',
            { photoId, variants: records },
            { jobId: `fanout-${photoId}`, group: photo.ownerId, replaceFinished: true },
          );
          return;
        }
        await finish(photo, records);
      }),

    /** The job after the variants: into the followers' feeds, then ready. Safe to run twice. */
    publish: (photoId: string, records: Record<string, PhotoVariantRecord>, ctx: JobContext): Promise<void> =>
      photoStep(photoId, ctx, async (photo) => {
        await timelines?.ready(photo);
        await finish(photo, records);
      }),

    /**
     * The sweeper: enqueues again every photo that has been processing for at
     * least `olderThanSeconds` (0: all, as at a single server's start). The
     * database is the jobs' record: a job the queue lost (a Redis failover
     * drops its last writes) is found here; one still queued or running is
     * left alone (the queue adds no job twice by id). Returns how many it saw.
     */
    async resumeProcessing(olderThanSeconds = 0, limit = 1000): Promise<number> {
      const left = await photos.processing({ olderThan: new Date(Date.now() - olderThanSeconds * 1000), limit });
      for (const p of left) {
        await queue.enqueue(
          'photo.variants',
          { photoId: p.id },
          { jobId: p.id, group: p.ownerId, replaceFinished: true },
        );
      }
      return left.length;
    },
  };
}

export type PhotoService = ReturnType<typeof createPhotoService>;
