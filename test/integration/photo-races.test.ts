import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPhotoRepository, type PhotoRepository } from '../../src/app/photos/repository.ts';
import { createPhotoService, type PhotoService } from '../../src/app/photos/service.ts';
import { createSocialRepository } from '../../src/app/social/repository.ts';
import { createSocialService } from '../../src/app/social/service.ts';
import { createThrottle } from '../../src/app/throttle.ts';
import { createUserRepository } from '../../src/app/users/repository.ts';
import { createFilesystemBlobStore } from '../../src/platform/blobs/filesystem.ts';
import { createMemoryCache } from '../../src/platform/cache/memory.ts';
import { openPgliteDb } from '../../src/platform/db/pglite.ts';
import { createSharpImageProcessor } from '../../src/platform/images/sharp.ts';
import { createMemoryQueue } from '../../src/platform/queue/memory.ts';
import { createDatabaseRateLimiter } from '../../src/platform/rate-limits/database.ts';
import type { Db } from '../../src/ports/db.ts';
import type { JobQueue } from '../../src/ports/queue.ts';
import { pngImage } from '../support/app.ts';
import { tempDir } from '../support/temp.ts';

const metrics = { signup() {}, upload() {}, like() {}, jobDone() {}, photoReady() {}, enqueueFailed() {} };
const firstTry = { attempt: 1, maxAttempts: 1 };

let db: Db;
let tmp: { dir: string; remove(): Promise<void> };
beforeAll(async () => {
  tmp = await tempDir();
  db = await openPgliteDb(path.join(tmp.dir, 'pg'));
});
afterAll(async () => {
  await db.close();
  await tmp.remove();
});

/** A photo service on the real database and blob store; `photos` may be wrapped to slow a step down. */
function photoService(opts: {
  photos?: PhotoRepository;
  queue?: JobQueue;
  blobDir: string;
  maxQueuedPerUser?: number;
}): PhotoService {
  const limiter = createDatabaseRateLimiter(db);
  return createPhotoService({
    photos: opts.photos ?? createPhotoRepository(db),
    blobs: createFilesystemBlobStore(opts.blobDir),
    queue: opts.queue ?? createMemoryQueue({ attempts: 1, backoffMs: 0 }),
    images: createSharpImageProcessor(50e6),
    cache: createMemoryCache({ policy: 'lru', maxEntries: 100, defaultTtlSeconds: 60 }),
    metrics,
    throttle: createThrottle(limiter, {
      windowMs: 60_000,
      loginsPerClient: 100,
      signupsPerClient: 100,
      accountFailuresBeforeBackoff: 5,
      uploadsPerUser: 100,
    }),
    limits: { maxBytes: 10e6, maxPixels: 50e6, maxQueuedPerUser: opts.maxQueuedPerUser ?? 100 },
  });
}

async function newUser(name: string): Promise<string> {
  const id = `${name.padEnd(16, 'x')}`.slice(0, 16);
  await createUserRepository(db).create({ id, username: name, passwordHash: 'x' });
  return id;
}

/** A point the test opens when it likes: `passed` resolves once `open` is called. */
function gate() {
  let open: () => void = () => {};
  const passed = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { passed, open };
}

async function filesUnder(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true })).map(String);
  } catch {
    return [];
  }
}

describe('a deleted photo is gone', () => {
  it('serves no variant once the DELETE returned, even when the job was still writing them', async () => {
    const blobDir = path.join(tmp.dir, 'blobs-race');
    const repo = createPhotoRepository(db);
    // The job is slowed down between writing the variants and marking the photo ready.
    const variantsWritten = gate();
    const resume = gate();
    const slowed: PhotoRepository = {
      ...repo,
      async markReady(id, variants) {
        variantsWritten.open();
        await resume.passed;
        return repo.markReady(id, variants);
      },
    };
    const service = photoService({ photos: slowed, blobDir, queue: createMemoryQueue({ attempts: 1, backoffMs: 0 }) });
    const owner = await newUser('race_owner');
    const { id } = await service.upload(owner, { data: await pngImage(400, 300), caption: '' });

    const job = service.makeVariants(id, firstTry);
    await variantsWritten.passed;
    await service.delete(id, owner);
    // The DELETE has returned: the variants the job wrote must not be served, from now on.
    expect(await service.variant(id, 'thumb')).toBeNull();
    expect(await service.variant(id, 'display')).toBeNull();
    resume.open();
    await job;
    expect(await service.variant(id, 'thumb')).toBeNull();
    // Nothing is left on disk, not even the photo's directory.
    expect(await filesUnder(blobDir)).toEqual([]);
  });

  it('removes every blob when the delete read the photo before the job finished', async () => {
    const blobDir = path.join(tmp.dir, 'blobs-stale');
    const repo = createPhotoRepository(db);
    const owner = await newUser('stale_owner');
    // The delete reads the row while the photo is processing (no variants listed) ...
    const deleteHasRead = gate();
    const jobDone = gate();
    const slowed: PhotoRepository = {
      ...repo,
      async delete(id, ownerId) {
        deleteHasRead.open();
        await jobDone.passed;
        return repo.delete(id, ownerId);
      },
    };
    const service = photoService({ photos: slowed, blobDir });
    const { id } = await service.upload(owner, { data: await pngImage(400, 300), caption: '' });
    const deleting = service.delete(id, owner);
    await deleteHasRead.passed;
    // ... and the job makes the variants and marks the photo ready before the row goes.
    await service.makeVariants(id, firstTry);
    jobDone.open();
    await deleting;
    expect(await service.variant(id, 'thumb')).toBeNull();
    expect(await filesUnder(blobDir)).toEqual([]);
  });

  it('leaves no empty directory behind a failed upload', async () => {
    const blobDir = path.join(tmp.dir, 'blobs-failed');
    const repo = createPhotoRepository(db);
    const failing: PhotoRepository = {
      ...repo,
      async createWithinCap() {
        throw new Error('the database said no');
      },
    };
    const service = photoService({ photos: failing, blobDir });
    const owner = await newUser('failed_owner');
    await expect(service.upload(owner, { data: await pngImage(), caption: '' })).rejects.toThrow(/said no/);
    expect(await filesUnder(blobDir)).toEqual([]);
  });
});

describe('a burst of uploads against the processing cap', () => {
  it('accepts no more than the cap, however many arrive at once', async () => {
    // A queue that never runs its jobs: every accepted photo stays processing.
    const queue: JobQueue = { ...createMemoryQueue({ attempts: 1, backoffMs: 0 }), async enqueue() {} };
    const service = photoService({ blobDir: path.join(tmp.dir, 'blobs-cap'), queue, maxQueuedPerUser: 5 });
    const owner = await newUser('cap_owner');
    const image = await pngImage();
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => service.upload(owner, { data: image, caption: '' })),
    );
    const accepted = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    expect(accepted).toHaveLength(5);
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ status: 429 });
    expect(await createPhotoRepository(db).countProcessing(owner)).toBe(5);
    // The refused uploads left no file behind: 5 originals only.
    const originals = (await filesUnder(path.join(tmp.dir, 'blobs-cap'))).filter((f) => f.endsWith('original'));
    expect(originals).toHaveLength(5);
  });
});

describe('a like racing the photo’s delete', () => {
  it('answers 404, not a foreign-key violation', async () => {
    const owner = await newUser('like_owner');
    const fan = await newUser('like_fan');
    const blobDir = path.join(tmp.dir, 'blobs-like');
    const photos = photoService({ blobDir });
    const { id } = await photos.upload(owner, { data: await pngImage(), caption: '' });
    await photos.makeVariants(id, firstTry);
    const repo = createPhotoRepository(db);
    const before = await repo.get(id, true);
    await photos.delete(id, owner);
    // The like checked the photo just before the delete (its read still says "ready").
    const social = createSocialService({
      social: createSocialRepository(db),
      users: createUserRepository(db),
      photos: { ...repo, get: async () => before },
      cache: createMemoryCache({ policy: 'lru', maxEntries: 10, defaultTtlSeconds: 60 }),
      metrics,
    });
    await expect(social.like(fan, id)).rejects.toMatchObject({ status: 404 });
  });
});
