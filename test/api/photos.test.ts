import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { Client, jpegWithExif, pngImage, useApp } from '../support/app.ts';

const app = useApp({ uploadMaxBytes: 200_000, uploadMaxMegapixels: 4 });

const loggedIn = () => app.loggedIn();
const photoCount = async (c: Client, name: string) =>
  (await c.request('GET', `/api/v1/users/${name}`)).body.user.photoCount;
const ownPhotos = async (c: Client, name: string) =>
  (await c.request('GET', `/api/v1/users/${name}/photos`)).body.items.length;

describe('uploading a photo', () => {
  it('stores it, makes oriented WebP variants without metadata, and lists it', async () => {
    const { c, name } = await loggedIn();
    const res = await c.upload(await jpegWithExif(1600, 1200), 'sunset');
    expect(res.status).toBe(202);
    expect(res.body.photo).toMatchObject({ status: 'processing' });
    const id = res.body.photo.id as string;

    const done = await c.waitForPhoto(id);
    expect(done.body.photo).toMatchObject({
      id,
      owner: name,
      caption: 'sunset',
      status: 'ready',
      likeCount: 0,
    });
    // EXIF orientation 6 turns 1600×1200 into a portrait photo.
    expect(done.body.photo).toMatchObject({ width: 1200, height: 1600 });
    for (const [variant, longSide] of [
      ['thumb', 320],
      ['display', 1080],
    ] as const) {
      const url = done.body.photo.variants[variant] as string;
      const img = await fetch(url);
      expect(img.status).toBe(200);
      expect(img.headers.get('content-type')).toBe('image/webp');
      expect(img.headers.get('cache-control')).toContain('immutable');
      const meta = await sharp(Buffer.from(await img.arrayBuffer())).metadata();
      expect(meta.format).toBe('webp');
      expect(meta.exif).toBeUndefined();
      expect(meta.xmp).toBeUndefined();
      expect(meta.orientation).toBeUndefined();
      expect(meta.height).toBe(longSide);
      expect(meta.width).toBe(Math.round((longSide * 3) / 4));
      expect(done.body.photo.sizes[variant]).toEqual({ width: meta.width, height: meta.height });
    }
    const feed = await c.request('GET', '/api/v1/feed');
    expect(feed.body.items.map((p: { id: string }) => p.id)).toContain(id);
    expect(await photoCount(c, name)).toBe(1);
  });

  it('detects the type by content, not by name', async () => {
    const { c } = await loggedIn();
    const res = await c.upload(await pngImage(), 'named like a text file', 'notes.txt');
    expect(res.status).toBe(202);
    expect((await c.waitForPhoto(res.body.photo.id)).body.photo.status).toBe('ready');
  });

  it.each([
    [
      'WebP',
      () =>
        sharp({ create: { width: 40, height: 30, channels: 3, background: '#f00' } })
          .webp()
          .toBuffer(),
    ],
    [
      'GIF',
      () =>
        sharp({ create: { width: 40, height: 30, channels: 3, background: '#0f0' } })
          .gif()
          .toBuffer(),
    ],
    [
      'AVIF',
      () =>
        sharp({ create: { width: 40, height: 30, channels: 3, background: '#00f' } })
          .avif()
          .toBuffer(),
    ],
  ])('accepts %s', async (_name, make) => {
    const { c } = await loggedIn();
    const res = await c.upload(await make());
    expect(res.status).toBe(202);
    expect((await c.waitForPhoto(res.body.photo.id)).body.photo.status).toBe('ready');
  });

  it('answers 401 when not logged in', async () => {
    const c = new Client(app.url);
    const res = await c.upload(await pngImage());
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('UNAUTHENTICATED');
  });

  it('answers 413 to a file over the size limit and stores nothing', async () => {
    const { c, name } = await loggedIn();
    const big = Buffer.concat([await pngImage(), Buffer.alloc(300_000, 7)]);
    const res = await c.upload(big);
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(await ownPhotos(c, name)).toBe(0);
  });

  it('answers 413 to a decompression bomb (too many pixels) and stores nothing', async () => {
    const { c, name } = await loggedIn();
    const bomb = await sharp({ create: { width: 4000, height: 4000, channels: 3, background: '#fff' } })
      .png({ compressionLevel: 9 })
      .toBuffer();
    expect(bomb.length).toBeLessThan(200_000);
    const res = await c.upload(bomb);
    expect(res.status).toBe(413);
    expect(await ownPhotos(c, name)).toBe(0);
  });

  it('answers 415 to a file that is not an image', async () => {
    const { c, name } = await loggedIn();
    const res = await c.upload(Buffer.from('#!/bin/sh\necho not an image\n'), 'x', 'evil.jpg');
    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(await ownPhotos(c, name)).toBe(0);
  });

  it('answers 422 to an image that cannot be decoded', async () => {
    const { c, name } = await loggedIn();
    const res = await c.upload(Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(500, 1)]));
    expect(res.status).toBe(422);
    expect(await ownPhotos(c, name)).toBe(0);
  });

  it('answers 400 to a form without a file, with an unknown field, or with a long caption', async () => {
    const { c, name } = await loggedIn();
    const noFile = new FormData();
    noFile.append('caption', 'nothing attached');
    expect((await c.request('POST', '/api/v1/photos', { body: noFile })).status).toBe(400);
    const extra = new FormData();
    extra.append('owner', 'someone_else');
    extra.append('file', new Blob([new Uint8Array(await pngImage())]), 'a.png');
    expect((await c.request('POST', '/api/v1/photos', { body: extra })).status).toBe(400);
    const long = new FormData();
    long.append('caption', 'x'.repeat(2001));
    long.append('file', new Blob([new Uint8Array(await pngImage())]), 'a.png');
    expect((await c.request('POST', '/api/v1/photos', { body: long })).status).toBe(400);
    expect((await c.request('POST', '/api/v1/photos', { json: { file: 'abc' } })).status).toBe(415);
    expect(await ownPhotos(c, name)).toBe(0);
  });
});

describe('reading and deleting photos', () => {
  it('answers 404 for an unknown photo and 400 for a malformed id', async () => {
    const c = new Client(app.url);
    expect((await c.request('GET', '/api/v1/photos/AAAAAAAAAAAAAAAA')).status).toBe(404);
    expect((await c.request('GET', '/api/v1/photos/not-an-id')).status).toBe(400);
    expect((await c.request('GET', '/media/photos/AAAAAAAAAAAAAAAA/thumb.webp')).status).toBe(404);
  });

  it('lets only the owner delete, and deleting removes the blobs', async () => {
    const owner = await loggedIn();
    const other = await loggedIn();
    const id = (await owner.c.upload(await pngImage())).body.photo.id as string;
    const ready = await owner.c.waitForPhoto(id);
    const thumb = ready.body.photo.variants.thumb as string;

    const denied = await other.c.request('DELETE', `/api/v1/photos/${id}`);
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe('FORBIDDEN');
    expect((await owner.c.request('GET', `/api/v1/photos/${id}`)).status).toBe(200);
    expect((await new Client(app.url).request('DELETE', `/api/v1/photos/${id}`)).status).toBe(401);

    expect((await owner.c.request('DELETE', `/api/v1/photos/${id}`)).status).toBe(204);
    expect((await owner.c.request('GET', `/api/v1/photos/${id}`)).status).toBe(404);
    expect((await fetch(thumb)).status).toBe(404);
    expect((await owner.c.request('DELETE', `/api/v1/photos/${id}`)).status).toBe(404);
    expect(await photoCount(owner.c, owner.name)).toBe(0);
  });
});
