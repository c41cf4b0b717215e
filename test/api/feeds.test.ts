import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, pngImage, startApp, type TestApp, useApp } from '../support/app.ts';

// Small caps so the tests reach them: 20 photos per precomputed feed, and
// authors with more than 2 followers are merged in when read, not pushed.
const app = useApp({ feedMaxEntries: 20, feedFanoutMaxFollowers: 2 });

type Feed = { items: { id: string; owner: string; status: string }[]; nextCursor: string | null };
const feedPage = async (c: Client, cursor?: string, base?: string): Promise<Feed> => {
  const res = await (base ? Object.assign(new Client(base), { cookies: c.cookies }) : c).request(
    'GET',
    `/api/v1/feed${cursor ? `?cursor=${cursor}` : ''}`,
  );
  expect(res.status).toBe(200);
  return res.body as Feed;
};
/** Every id of the feed, page by page. */
const wholeFeed = async (c: Client): Promise<string[]> => {
  const ids: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 50; i++) {
    const page = await feedPage(c, cursor);
    ids.push(...page.items.map((p) => p.id));
    if (!page.nextCursor) return ids;
    cursor = page.nextCursor;
  }
  throw new Error('the feed does not end');
};
const upload = async (c: Client) => (await c.upload(await pngImage())).body.photo.id as string;
const readyPhotos = async (c: Client, n: number) => {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await upload(c));
  for (const id of ids) await c.waitForPhoto(id);
  return ids.reverse(); // newest first, as the feed shows them
};
const follow = async (c: Client, name: string) =>
  expect((await c.request('PUT', `/api/v1/users/${name}/follow`)).status).toBe(204);
const unfollow = async (c: Client, name: string) =>
  expect((await c.request('DELETE', `/api/v1/users/${name}/follow`)).status).toBe(204);
const metric = async (pattern: RegExp) => {
  const body = (await new Client(app.metricsUrl).request('GET', '/metrics')).body as string;
  return Number(pattern.exec(body)?.[1] ?? 0);
};

describe('precomputed home feeds (fan-out on write)', () => {
  it("an upload is in its owner's feed at once, processing, and in a follower's feed once ready", async () => {
    const author = await app.loggedIn();
    const fan = await app.loggedIn();
    await follow(fan.c, author.name);
    expect((await feedPage(fan.c)).items).toEqual([]);
    const id = await upload(author.c);
    const own = await feedPage(author.c);
    expect(own.items[0]?.id).toBe(id);
    await author.c.waitForPhoto(id);
    expect((await feedPage(fan.c)).items.map((p) => p.id)).toEqual([id]);
    expect((await feedPage(author.c)).items.map((p) => [p.id, p.status])).toEqual([[id, 'ready']]);
  });

  it('a follow merges the author’s photos in, an unfollow takes them out, a delete leaves every feed', async () => {
    const author = await app.loggedIn();
    const other = await app.loggedIn();
    const fan = await app.loggedIn();
    const mine = await readyPhotos(fan.c, 1);
    const [theirs, others] = [await readyPhotos(author.c, 3), await readyPhotos(other.c, 1)];
    await follow(fan.c, other.name);
    // Built now, so the follow below must merge into a timeline that exists.
    expect(await wholeFeed(fan.c)).toEqual([...others, ...mine]);
    await follow(fan.c, author.name);
    expect(await wholeFeed(fan.c)).toEqual([...others, ...theirs, ...mine]);
    const [first, ...rest] = theirs as [string, ...string[]];
    expect((await author.c.request('DELETE', `/api/v1/photos/${first}`)).status).toBe(204);
    expect(await wholeFeed(fan.c)).toEqual([...others, ...rest, ...mine]);
    expect(await wholeFeed(author.c)).toEqual(rest);
    await unfollow(fan.c, author.name);
    expect(await wholeFeed(fan.c)).toEqual([...others, ...mine]);
  });

  it('pages keep their place while new photos arrive: no repeats, no gaps', async () => {
    const author = await app.loggedIn();
    const fan = await app.loggedIn();
    await follow(fan.c, author.name);
    const before = await readyPhotos(author.c, 25);
    const first = await feedPage(fan.c);
    expect(first.items.map((p) => p.id)).toEqual(before.slice(0, 20));
    const newer = await readyPhotos(author.c, 3);
    const second = await feedPage(fan.c, first.nextCursor ?? undefined);
    expect(second.items.map((p) => p.id)).toEqual(before.slice(20));
    expect(second.nextCursor).toBeNull();
    // The feed holds 20 entries: the 28 photos are all there, the oldest from the database.
    expect(await wholeFeed(fan.c)).toEqual([...newer, ...before]);
  });

  it('a popular author is not fanned out: their photos are merged into their followers’ feeds when read', async () => {
    const star = await app.loggedIn();
    const fans = [await app.loggedIn(), await app.loggedIn(), await app.loggedIn()];
    for (const f of fans) await follow(f.c, star.name);
    for (const f of fans) expect(await wholeFeed(f.c)).toEqual([]);
    const pushedTo = /scaleout_feed_fanout_followers_sum (\d+)/;
    const fanouts = /scaleout_feed_fanout_followers_count (\d+)/;
    const [sumBefore, countBefore] = [await metric(pushedTo), await metric(fanouts)];
    const ids = await readyPhotos(star.c, 2);
    expect(await metric(fanouts)).toBe(countBefore + 2);
    expect(await metric(pushedTo)).toBe(sumBefore); // three followers > 2: pushed to nobody
    for (const f of fans) expect(await wholeFeed(f.c)).toEqual(ids);
    await unfollow(fans[0]?.c as Client, star.name);
    expect(await wholeFeed(fans[0]?.c as Client)).toEqual([]);
  });

  it('a warm feed read asks the database nothing', async () => {
    const author = await app.loggedIn();
    const fan = await app.loggedIn();
    await follow(fan.c, author.name);
    await readyPhotos(author.c, 3);
    await feedPage(fan.c);
    const queries = /scaleout_db_queries_per_request_sum\{route="\/api\/v1\/feed"\} (\d+)/;
    const reads = /scaleout_db_queries_per_request_count\{route="\/api\/v1\/feed"\} (\d+)/;
    const [q0, r0] = [await metric(queries), await metric(reads)];
    for (let i = 0; i < 10; i++) await feedPage(fan.c);
    expect(await metric(reads)).toBe(r0 + 10);
    expect(await metric(queries)).toBe(q0);
  });

  it("a warm profile page is read from the author's timeline: no database query", async () => {
    const author = await app.loggedIn();
    const fan = await app.loggedIn();
    const ids = await readyPhotos(author.c, 3);
    const page = async () => {
      const res = await fan.c.request('GET', `/api/v1/users/${author.name}/photos`);
      expect(res.status).toBe(200);
      return (res.body as Feed).items.map((p) => p.id);
    };
    expect(await page()).toEqual(ids);
    const route = 'route="\\/api\\/v1\\/users\\/:username\\/photos"';
    const queries = new RegExp(`scaleout_db_queries_per_request_sum\\{${route}\\} (\\d+)`);
    const reads = new RegExp(`scaleout_db_queries_per_request_count\\{${route}\\} (\\d+)`);
    const [q0, r0] = [await metric(queries), await metric(reads)];
    for (let i = 0; i < 5; i++) expect(await page()).toEqual(ids);
    expect(await metric(reads)).toBe(r0 + 5);
    expect(await metric(queries)).toBe(q0);
  });
});

describe('a feed missing from the cache', () => {
  let small: TestApp;
  beforeAll(async () => {
    // One precomputed feed in the process: reading another's pushes it out.
    small = await startApp({ feedMaxTimelines: 1 });
  });
  afterAll(async () => {
    await small?.stop();
    await small?.remove();
  });

  it('is rebuilt from the database by its first read, which already returns the whole page', async () => {
    const login = async () => {
      const c = new Client(small.url);
      const name = await c.signUp();
      await c.logIn(name);
      return { c, name };
    };
    const [author, fan, other] = [await login(), await login(), await login()];
    await follow(fan.c, author.name);
    const ids = await readyPhotos(author.c, 3);
    expect((await feedPage(fan.c)).items.map((p) => p.id)).toEqual(ids);
    await feedPage(other.c); // evicts the fan's feed
    const rebuilds = async () => {
      const body = (await new Client(small.runtime.metricsUrl()).request('GET', '/metrics')).body as string;
      return Number(/scaleout_feed_timeline_rebuilds_total\{kind="home"\} (\d+)/.exec(body)?.[1] ?? 0);
    };
    const before = await rebuilds();
    expect((await feedPage(fan.c)).items.map((p) => p.id)).toEqual(ids);
    expect(await rebuilds()).toBe(before + 1);
  });
});
