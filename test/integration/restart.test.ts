import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFilesystemBlobStore } from '../../src/platform/blobs/filesystem.ts';
import { openPgliteDb } from '../../src/platform/db/pglite.ts';
import { Client, jpegWithExif, pngImage, startApp, type TestApp } from '../support/app.ts';
import { tempDir } from '../support/temp.ts';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

describe('single server restart', () => {
  it('keeps users, photos, follows, likes and the logged-in session', async () => {
    const tmp = await tempDir();
    cleanups.push(tmp.remove);
    let app: TestApp = await startApp({}, tmp.dir);
    cleanups.push(() => app.stop());
    const alice = new Client(app.url);
    const aliceName = await alice.signUp();
    await alice.logIn(aliceName);
    const bob = new Client(app.url);
    const bobName = await bob.signUp();
    await bob.logIn(bobName);
    const id = (await alice.upload(await jpegWithExif(), 'before restart')).body.photo.id as string;
    expect((await alice.waitForPhoto(id)).body.photo.status).toBe('ready');
    await bob.request('PUT', `/api/v1/users/${aliceName}/follow`);
    await bob.request('PUT', `/api/v1/photos/${id}/like`);

    await app.stop();
    app = await startApp({}, tmp.dir);
    const base = new URL(app.url);
    for (const c of [alice, bob]) c.base = base.origin;

    const feed = await alice.request('GET', '/api/v1/feed');
    expect(feed.status).toBe(200);
    expect(feed.body.items.map((p: { id: string }) => p.id)).toEqual([id]);
    const photo = await bob.request('GET', `/api/v1/photos/${id}`, { bearer: true });
    expect(photo.body.photo).toMatchObject({
      status: 'ready',
      likeCount: 1,
      likedByMe: true,
      caption: 'before restart',
    });
    expect((await fetch(photo.body.photo.variants.display)).status).toBe(200);
    expect((await alice.request('GET', `/api/v1/users/${aliceName}`)).body.user).toMatchObject({
      followerCount: 1,
      photoCount: 1,
    });
    expect((await bob.request('GET', '/api/v1/feed')).body.items[0].id).toBe(id);
    await app.stop();
  });

  it('re-queues a photo that a crash left processing', async () => {
    const tmp = await tempDir();
    cleanups.push(tmp.remove);
    // The state a crash leaves: the original stored, the row still processing, no job anywhere.
    const db = await openPgliteDb(path.join(tmp.dir, 'pg'));
    await db.primary
      .insertInto('users')
      .values({ id: 'crashuser000001a', username: 'crash_user', password_hash: 'x' })
      .execute();
    await db.primary
      .insertInto('photos')
      .values({
        id: 'crashphoto00001a',
        owner_id: 'crashuser000001a',
        caption: '',
        status: 'processing',
        mime_type: 'image/png',
        width: 64,
        height: 48,
        byte_size: 1,
      })
      .execute();
    await db.close();
    await createFilesystemBlobStore(path.join(tmp.dir, 'blobs')).put(
      'photos/crashphoto00001a/original',
      await pngImage(),
      'image/png',
    );

    const app = await startApp({}, tmp.dir);
    cleanups.push(() => app.stop());
    const c = new Client(app.url);
    const res = await c.waitForPhoto('crashphoto00001a');
    expect(res.body.photo.status).toBe('ready');
    expect((await fetch(res.body.photo.variants.thumb)).status).toBe(200);
  });
});
