import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../../src/bench/seed.ts';
import { configSchema } from '../../src/config.ts';
import { Client, startApp, type TestApp } from '../support/app.ts';

/**
 * `scaleout seed` against a site with the default limits (5 sign-ups and 10
 * log-ins a minute per address, 5 photos processing per user): it waits out
 * each 429 for its Retry-After, and for an owner's photos to be processed,
 * and completes. The limits' window is 3 s here instead of 60, so the test
 * waits seconds, not minutes; the counts are the defaults.
 */
describe('seed against the default limits', () => {
  let app: TestApp;
  const defaults = configSchema.parse({});
  beforeAll(async () => {
    app = await startApp({
      loginRateLimit: defaults.loginRateLimit,
      signupRateLimit: defaults.signupRateLimit,
      uploadRateLimit: defaults.uploadRateLimit,
      uploadMaxQueued: defaults.uploadMaxQueued,
      rateLimitWindowSeconds: 3,
    });
  });
  afterAll(async () => {
    await app?.stop();
    await app?.remove();
  });

  it('completes: more sign-ups than the limit, and more photos for one owner than may be processing', async () => {
    const lines: string[] = [];
    const users = defaults.signupRateLimit + 3;
    const photos = defaults.uploadMaxQueued * 3;
    const manifest = await seed({ target: app.url, users, photos, follows: 1, seed: 7, log: (l) => lines.push(l) });
    expect(manifest.users).toHaveLength(users);
    expect(manifest.tokens.every(Boolean)).toBe(true);
    expect(manifest.photoIds).toHaveLength(photos);
    // It was limited, and said so.
    expect(lines.some((l) => l.includes('POST /api/v1/users: limited by the site (429)'))).toBe(true);
    expect(lines.some((l) => l.includes('POST /api/v1/photos: limited by the site (429)'))).toBe(true);
    const c = new Client(app.url);
    c.token = manifest.viewer.token;
    for (const id of manifest.photoIds) {
      expect((await c.request('GET', `/api/v1/photos/${id}`)).body.photo.status).toBe('ready');
    }
  }, 120_000);
});
