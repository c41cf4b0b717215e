import { describe, expect, it } from 'vitest';
import { Client, pngImage, uniqueName, useApp } from '../support/app.ts';

const app = useApp();

const loggedIn = () => app.loggedIn();
const profile = async (c: Client, name: string) => (await c.request('GET', `/api/v1/users/${name}`)).body.user;
const readyPhoto = async (c: Client) => {
  const id = (await c.upload(await pngImage())).body.photo.id as string;
  await c.waitForPhoto(id);
  return id;
};

describe('follows', () => {
  it('follow and unfollow change both counts, and repeating them changes nothing', async () => {
    const a = await loggedIn();
    const b = await loggedIn();
    expect((await a.c.request('PUT', `/api/v1/users/${b.name}/follow`)).status).toBe(204);
    expect((await a.c.request('PUT', `/api/v1/users/${b.name}/follow`)).status).toBe(204);
    expect(await profile(a.c, b.name)).toMatchObject({ followerCount: 1, followingCount: 0 });
    expect(await profile(a.c, a.name)).toMatchObject({ followerCount: 0, followingCount: 1 });
    expect((await a.c.request('GET', `/api/v1/users/${b.name}`)).body.following).toBe(true);
    expect((await a.c.request('DELETE', `/api/v1/users/${b.name}/follow`)).status).toBe(204);
    expect((await a.c.request('DELETE', `/api/v1/users/${b.name}/follow`)).status).toBe(204);
    expect(await profile(a.c, b.name)).toMatchObject({ followerCount: 0 });
    expect(await profile(a.c, a.name)).toMatchObject({ followingCount: 0 });
  });

  it('refuses to follow yourself (400), unknown users (404) and anonymous callers (401)', async () => {
    const a = await loggedIn();
    expect((await a.c.request('PUT', `/api/v1/users/${a.name}/follow`)).status).toBe(400);
    expect((await a.c.request('PUT', `/api/v1/users/${uniqueName()}/follow`)).status).toBe(404);
    expect((await a.c.request('PUT', '/api/v1/users/BAD NAME/follow')).status).toBe(400);
    expect((await new Client(app.url).request('PUT', `/api/v1/users/${a.name}/follow`)).status).toBe(401);
    expect(await profile(a.c, a.name)).toMatchObject({ followerCount: 0, followingCount: 0 });
  });
});

describe('likes', () => {
  it('like and unlike change the count once per user', async () => {
    const owner = await loggedIn();
    const fan = await loggedIn();
    const id = await readyPhoto(owner.c);
    expect((await fan.c.request('PUT', `/api/v1/photos/${id}/like`)).status).toBe(204);
    expect((await fan.c.request('PUT', `/api/v1/photos/${id}/like`)).status).toBe(204);
    expect((await owner.c.request('PUT', `/api/v1/photos/${id}/like`)).status).toBe(204);
    const liked = await fan.c.request('GET', `/api/v1/photos/${id}`);
    expect(liked.body.photo).toMatchObject({ likeCount: 2, likedByMe: true });
    expect((await fan.c.request('DELETE', `/api/v1/photos/${id}/like`)).status).toBe(204);
    const after = await fan.c.request('GET', `/api/v1/photos/${id}`);
    expect(after.body.photo).toMatchObject({ likeCount: 1, likedByMe: false });
  });

  it('keeps the like count exact when many like and unlike at once, twice each', async () => {
    const owner = await loggedIn();
    const id = await readyPhoto(owner.c);
    const fans = await Promise.all(Array.from({ length: 12 }, () => loggedIn()));
    const all = (method: string) =>
      Promise.all(fans.flatMap((f) => [1, 2].map(() => f.c.request(method, `/api/v1/photos/${id}/like`))));
    expect((await all('PUT')).map((r) => r.status)).toEqual(Array(24).fill(204));
    expect((await owner.c.request('GET', `/api/v1/photos/${id}`)).body.photo.likeCount).toBe(12);
    // The feed and the profile page read the same stored count.
    const listed = (await owner.c.request('GET', `/api/v1/users/${owner.name}/photos`)).body.items[0];
    expect(listed).toMatchObject({ id, likeCount: 12 });
    expect((await all('DELETE')).map((r) => r.status)).toEqual(Array(24).fill(204));
    expect((await owner.c.request('GET', `/api/v1/photos/${id}`)).body.photo.likeCount).toBe(0);
  });

  it('answers 404 for unknown photos, 400 for malformed ids and 401 when anonymous', async () => {
    const a = await loggedIn();
    expect((await a.c.request('PUT', '/api/v1/photos/AAAAAAAAAAAAAAAA/like')).status).toBe(404);
    expect((await a.c.request('PUT', '/api/v1/photos/xyz/like')).status).toBe(400);
    const id = await readyPhoto(a.c);
    expect((await new Client(app.url).request('PUT', `/api/v1/photos/${id}/like`)).status).toBe(401);
    expect((await a.c.request('GET', `/api/v1/photos/${id}`)).body.photo.likeCount).toBe(0);
  });
});

describe('feeds', () => {
  it('the home feed holds your photos and those of people you follow, newest first', async () => {
    const me = await loggedIn();
    const followed = await loggedIn();
    const stranger = await loggedIn();
    const old = await readyPhoto(followed.c);
    const mine = await readyPhoto(me.c);
    const newer = await readyPhoto(followed.c);
    await readyPhoto(stranger.c);
    await me.c.request('PUT', `/api/v1/users/${followed.name}/follow`);
    const feed = await me.c.request('GET', '/api/v1/feed');
    expect(feed.status).toBe(200);
    expect(feed.body.items.map((p: { id: string }) => p.id)).toEqual([newer, mine, old]);
    expect(feed.body.nextCursor).toBeNull();
  });

  it('pages with a cursor without gaps or repeats', async () => {
    const me = await loggedIn();
    const ids: string[] = [];
    const png = await pngImage(8, 8);
    for (let i = 0; i < 23; i++) ids.unshift((await me.c.upload(png)).body.photo.id);
    for (const id of ids) await me.c.waitForPhoto(id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { body: { items: { id: string }[]; nextCursor: string | null } } = await me.c.request(
        'GET',
        `/api/v1/feed${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      seen.push(...res.body.items.map((p) => p.id));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor && pages < 5);
    expect(pages).toBe(2);
    expect(seen).toEqual(ids);

    const profilePage = await me.c.request('GET', `/api/v1/users/${me.name}/photos`);
    expect(profilePage.body.items).toHaveLength(20);
    const next = await me.c.request(
      'GET',
      `/api/v1/users/${me.name}/photos?cursor=${encodeURIComponent(profilePage.body.nextCursor)}`,
    );
    expect(next.body.items.map((p: { id: string }) => p.id)).toEqual(ids.slice(20));
  });

  it('answers 400 to a bad cursor or unknown query field, 401 to an anonymous feed, 404 for unknown users', async () => {
    const me = await loggedIn();
    expect((await me.c.request('GET', '/api/v1/feed?cursor=garbage')).status).toBe(400);
    expect((await me.c.request('GET', '/api/v1/feed?page=2')).status).toBe(400);
    expect((await new Client(app.url).request('GET', '/api/v1/feed')).status).toBe(401);
    expect((await me.c.request('GET', `/api/v1/users/${uniqueName()}/photos`)).status).toBe(404);
  });

  it("others see only a user's ready photos; the owner also sees those processing", async () => {
    const owner = await loggedIn();
    const other = await loggedIn();
    const id = await readyPhoto(owner.c);
    const visible = await other.c.request('GET', `/api/v1/users/${owner.name}/photos`);
    expect(visible.body.items.map((p: { id: string }) => p.id)).toEqual([id]);
    expect(visible.body.items[0].variants.thumb).toMatch(/^http:\/\/.+\/media\/photos\/.+\/thumb\.webp$/);
  });
});
