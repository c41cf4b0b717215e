import type { BlobStore } from '../../ports/blobs.ts';
import type { Cache } from '../../ports/cache.ts';
import type { PhotoVariantRecord } from '../../ports/db.ts';
import type { ImageProcessor } from '../../ports/images.ts';
import type { BusinessMetrics } from '../../ports/metrics.ts';
import type { JobContext, JobQueue } from '../../ports/queue.ts';
import { forbidden, notFound, payloadTooLarge, unprocessable, unsupportedMediaType } from '../errors.ts';
import { newId } from '../ids.ts';
import { profileCacheKey } from '../users/service.ts';
import { detectImageFormat, mimeTypes } from './image-type.ts';
import type { PhotoRepository, PhotoRow } from './repository.ts';

/** A photo as cached and mapped: JSON-safe, with no viewer-specific fields. */
export interface PhotoView extends Omit<PhotoRow, 'createdAt'> {
  createdAt: string;
}

export const photoCacheKey = (id: string) => `photo:${id}`;
export const originalKey = (id: string) => `photos/${id}/original`;
export const variantKey = (id: string, name: string) => `photos/${id}/${name}.webp`;

export const toPhotoView = (row: PhotoRow): PhotoView => ({ ...row, createdAt: row.createdAt.toISOString() });

export interface PhotoLimits {
  maxBytes: number;
  maxPixels: number;
}

export function createPhotoService(deps: {
  photos: PhotoRepository;
  blobs: BlobStore;
  queue: JobQueue;
  images: ImageProcessor;
  cache: Cache;
  metrics: BusinessMetrics;
  limits: PhotoLimits;
}) {
  const { photos, blobs, queue, images, cache, metrics, limits } = deps;

  const forget = async (photo: { id: string; owner: string }) =>
    cache.delete(photoCacheKey(photo.id), profileCacheKey(photo.owner));

  return {
    /** Stores the original and queues its variants; the photo is `processing` until they exist. */
    async upload(
      ownerId: string,
      file: { data: Buffer; caption: string },
    ): Promise<{ id: string; status: 'processing' }> {
      if (file.data.length > limits.maxBytes) throw payloadTooLarge(`the file is larger than ${limits.maxBytes} bytes`);
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
      const id = newId();
      await blobs.put(originalKey(id), file.data, mimeTypes[format]);
      try {
        await photos.create({
          id,
          ownerId,
          caption: file.caption,
          mimeType: mimeTypes[format],
          width: size.width,
          height: size.height,
          byteSize: file.data.length,
          createdAt: new Date(),
        });
      } catch (err) {
        await blobs.delete(originalKey(id));
        throw err;
      }
      await queue.enqueue('photo.variants', { photoId: id }, { jobId: id });
      metrics.upload();
      return { id, status: 'processing' };
    },

    async get(id: string): Promise<PhotoView> {
      const hit = await cache.get<PhotoView>(photoCacheKey(id));
      if (hit) return hit;
      // The cache is filled from the primary: a value read from a lagging
      // replica would be served to everyone, the writer included, until it expires.
      const row = await photos.get(id, true);
      if (!row) throw notFound('photo');
      const photo = toPhotoView(row);
      // Only settled photos are cached: a processing one changes soon.
      if (photo.status !== 'processing') await cache.set(photoCacheKey(id), photo);
      return photo;
    },

    /** A variant's bytes, or null. Variants are immutable, so no database read is needed. */
    variant: (id: string, name: 'thumb' | 'display') => blobs.get(variantKey(id, name)),

    likedBy: (userId: string, photoId: string) => photos.likedBy(userId, [photoId]).then((s) => s.has(photoId)),

    async delete(id: string, userId: string): Promise<void> {
      const photo = await photos.get(id, true);
      if (!photo) throw notFound('photo');
      if (photo.ownerId !== userId) throw forbidden('only the owner may delete a photo');
      if (!(await photos.delete(id, userId))) throw notFound('photo');
      await blobs.delete(originalKey(id), ...Object.values(photo.variants).map((v) => v.key));
      await forget(photo);
    },

    /** The job: makes the variants of one photo. Safe to run twice. */
    async makeVariants(photoId: string, ctx: JobContext): Promise<void> {
      const photo = await photos.get(photoId, true);
      if (photo?.status !== 'processing') return;
      try {
        const original = await blobs.get(originalKey(photoId));
        if (!original) throw new Error(`original of ${photoId} is missing`);
        const made = await images.variants(original.data);
        const records: Record<string, PhotoVariantRecord> = {};
        for (const v of made) {
          const key = variantKey(photoId, v.name);
          await blobs.put(key, v.data, v.contentType);
          records[v.name] = { key, width: v.width, height: v.height, bytes: v.data.length };
        }
        if (!(await photos.markReady(photoId, records))) {
          // Deleted while we worked: leave nothing behind.
          await blobs.delete(...Object.values(records).map((r) => r.key));
        }
      } catch (err) {
        if (ctx.attempt >= ctx.maxAttempts) await photos.markFailed(photoId);
        throw err;
      } finally {
        await forget(photo);
      }
    },

    /** Re-queues photos a crash left processing. Returns how many. */
    async resumeProcessing(): Promise<number> {
      const ids = await photos.processingIds();
      for (const id of ids) await queue.enqueue('photo.variants', { photoId: id }, { jobId: id });
      return ids.length;
    },
  };
}

export type PhotoService = ReturnType<typeof createPhotoService>;
