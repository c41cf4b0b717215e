import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresInvalidations } from '../../src/platform/invalidations/postgres.ts';
import { createLogger } from '../../src/platform/observability/logger.ts';
import { Client, pngImage, startApp, type TestApp } from '../support/app.ts';
import { createTestDatabase } from '../support/postgres.ts';
import { tempDir } from '../support/temp.ts';

/**
 * Step 1.3's `lb` without Redis: two web servers on one PostgreSQL server,
 * each with its own in-process cache. A write through one and a read at once
 * through the other must not see the old value: the writer's deletes reach
 * the other server by NOTIFY, delivered when the write commits.
 */
async function twoServers(cacheInvalidation: 'auto' | 'off') {
  const database = await createTestDatabase();
  const blobs = await tempDir();
  const common = {
    db: 'postgres',
    databaseUrl: database.url,
    blobDir: blobs.dir,
    secret: 'x'.repeat(40),
    cacheInvalidation,
    // Long enough that only an invalidation can make a cached photo fresh.
    cacheTtlSeconds: 600,
  };
  const web1 = await startApp(common);
  const web2 = await startApp(common);
  return {
    web1,
    web2,
    async stop() {
      for (const w of [web1, web2] as TestApp[]) {
        await w.stop();
        await w.remove();
      }
      await database.drop();
      await blobs.remove();
    },
  };
}

/** Likes and unlikes through web-1, each read at once through web-2; returns how many reads were stale. */
async function staleReads(web1: TestApp, web2: TestApp, rounds: number): Promise<number> {
  const owner = new Client(web1.url);
  await owner.logIn(await owner.signUp());
  const up = await owner.upload(await pngImage());
  expect(up.status).toBe(202);
  const id = up.body.photo.id as string;
  expect((await owner.waitForPhoto(id)).body.photo.status).toBe('ready');
  const fan = new Client(web1.url);
  await fan.logIn(await fan.signUp());
  const fanOn2 = new Client(web2.url);
  fanOn2.cookies = new Map(fan.cookies);
  const read = async () => (await fanOn2.request('GET', `/api/v1/photos/${id}`)).body.photo;
  await read(); // web-2 now has the photo cached
  let stale = 0;
  for (let i = 0; i < rounds; i++) {
    const liked = i % 2 === 0;
    expect((await fan.request(liked ? 'PUT' : 'DELETE', `/api/v1/photos/${id}/like`)).status).toBe(204);
    const photo = await read();
    if (photo.likeCount !== (liked ? 1 : 0) || photo.likedByMe !== liked) stale++;
  }
  return stale;
}

describe('cache invalidation through PostgreSQL (lb without Redis)', () => {
  let servers: Awaited<ReturnType<typeof twoServers>>;
  beforeAll(async () => {
    servers = await twoServers('auto');
  });
  afterAll(async () => servers?.stop());

  it('a like through web-1, read at once through web-2, 200 times: 0 stale', async () => {
    expect(await staleReads(servers.web1, servers.web2, 200)).toBe(0);
  }, 60_000);

  it('a log-out through web-1 ends the session on web-2 at once (web-2 caches sessions)', async () => {
    const user = new Client(servers.web1.url);
    await user.logIn(await user.signUp());
    const on2 = new Client(servers.web2.url);
    on2.cookies = new Map(user.cookies);
    for (let i = 0; i < 3; i++) expect((await on2.request('GET', '/api/v1/feed')).status).toBe(200);
    const sessionHits = (await metric(servers.web2, 'scaleout_cache_lookups_total')).filter(
      (l) => l.includes('class="session"') && l.includes('result="hit"'),
    );
    expect(Number(sessionHits[0]?.split(' ').at(-1))).toBeGreaterThan(0);
    expect((await user.request('DELETE', '/api/v1/sessions/current')).status).toBe(204);
    expect((await on2.request('GET', '/api/v1/feed')).status).toBe(401);
  });

  it('counts each invalidation and how long the other server took to confirm it; none went unconfirmed', async () => {
    const lines = await metric(servers.web1, 'scaleout_cache_invalidation_seconds_count');
    expect(Number(lines[0]?.split(' ').at(-1))).toBeGreaterThan(0);
    const late = await metric(servers.web1, 'scaleout_cache_invalidations_unconfirmed_total');
    expect(Number(late[0]?.split(' ').at(-1))).toBe(0);
  });
});

describe('the channel itself', () => {
  it('publish resolves only after every other process has dropped the keys (an asynchronous drop too), and counts the ones that hang', async () => {
    const database = await createTestDatabase();
    const logger = createLogger('silent');
    const open = (ackTimeoutMs = 250) =>
      createPostgresInvalidations({ url: database.url, logger, peersEveryMs: 100, ackTimeoutMs });
    const [a, b, c] = [await open(), await open(), await open()];
    try {
      const seen = { b: [] as string[], c: [] as string[] };
      // b drops the keys asynchronously, as a data center's cache Redis does (a round trip): its confirmation waits.
      b.subscribe({
        keys: async (k) => {
          await new Promise((r) => setTimeout(r, 20));
          seen.b.push(...k);
        },
        gap: () => {},
      });
      c.subscribe({
        keys: (k) => {
          seen.c.push(...k);
        },
        gap: () => {},
      });
      await new Promise((r) => setTimeout(r, 300)); // every channel has counted its peers
      for (let i = 0; i < 50; i++) {
        await a.publish([`photo:${i}`]);
        // Both others had it before the publish resolved.
        expect([seen.b.at(-1), seen.c.at(-1)]).toEqual([`photo:${i}`, `photo:${i}`]);
      }
    } finally {
      for (const ch of [a, b, c]) await ch.close();
    }
    // A process that listens but never answers (hung): the publish waits its time limit, then goes on.
    const timings: (number | null)[] = [];
    const fast = await createPostgresInvalidations({
      url: database.url,
      logger,
      peersEveryMs: 100,
      ackTimeoutMs: 150,
      onPublish: (ms) => timings.push(ms),
    });
    const hung = new pg.Client({ connectionString: database.url });
    await hung.connect();
    await hung.query('LISTEN scaleout_cache');
    try {
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      await fast.publish(['photo:x']);
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);
      expect(timings).toEqual([null]);
    } finally {
      await hung.end();
      await fast.close();
      await database.drop();
    }
  });
});

describe('without the channel (cacheInvalidation off)', () => {
  it('the same reads through web-2 are stale: what the channel fixes', async () => {
    const servers = await twoServers('off');
    try {
      expect(await staleReads(servers.web1, servers.web2, 20)).toBeGreaterThan(0);
    } finally {
      await servers.stop();
    }
  }, 60_000);
});

async function metric(app: TestApp, name: string): Promise<string[]> {
  const text = await (await fetch(`${app.runtime.metricsUrl()}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name));
}
