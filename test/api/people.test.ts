import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Client, useApp } from '../support/app.ts';

const app = useApp();

/** Signs up `name` and returns a logged-in client. */
async function person(name: string): Promise<Client> {
  const c = new Client(app.url);
  await c.signUp(name);
  await c.logIn(name);
  return c;
}

describe('finding people', () => {
  it('searches by the start of a username, literally, in order, with follower counts', async () => {
    const p = `pp${randomBytes(3).toString('hex')}`;
    const alice = await person(`${p}_alice`);
    await person(`${p}_alan`);
    await person(`${p}_bob`);
    await person(`${p}xal_not`);
    expect((await alice.request('PUT', `/api/v1/users/${p}_alan/follow`)).status).toBe(204);

    const res = await new Client(app.url).request('GET', `/api/v1/users?q=${p}_al`);
    expect(res.status).toBe(200);
    expect(res.body.items).toEqual([
      { username: `${p}_alan`, followerCount: 1 },
      { username: `${p}_alice`, followerCount: 0 },
    ]);
    // '_' is a character here, not a wildcard.
    expect((await new Client(app.url).request('GET', `/api/v1/users?q=${p}_`)).body.items).toHaveLength(3);
    expect((await new Client(app.url).request('GET', `/api/v1/users?q=${p}zzz`)).body.items).toEqual([]);
  });

  it('answers 400 to a search that is not a username prefix', async () => {
    const c = new Client(app.url);
    for (const q of ['', 'A', 'a%', "a'", 'a b', 'x'.repeat(31), 'a\u0000']) {
      expect((await c.request('GET', `/api/v1/users?q=${encodeURIComponent(q)}`)).status, q).toBe(400);
    }
    expect((await c.request('GET', '/api/v1/users')).status).toBe(400);
    expect((await c.request('GET', '/api/v1/users?q=ab&extra=1')).status).toBe(400);
    expect((await c.request('GET', '/people?q=%25', { headers: { accept: 'text/html' } })).status).toBe(400);
  });

  it('suggests the most-followed people the viewer does not follow yet, and offers them from an empty feed', async () => {
    const p = `ps${randomBytes(3).toString('hex')}`;
    const star = `${p}_star`;
    const known = `${p}_known`;
    await person(star);
    await person(known);
    const fans = await Promise.all([1, 2, 3, 4, 5].map((i) => person(`${p}_fan${i}`)));
    for (const fan of fans) expect((await fan.request('PUT', `/api/v1/users/${star}/follow`)).status).toBe(204);
    for (const fan of fans.slice(0, 4))
      expect((await fan.request('PUT', `/api/v1/users/${known}/follow`)).status).toBe(204);

    const viewer = await person(`${p}_viewer`);
    // A new user's feed is empty, and points to the people page.
    const feed = await viewer.request('GET', '/', { headers: { accept: 'text/html' } });
    expect(String(feed.body)).toContain('href="/people"');
    expect((await viewer.request('PUT', `/api/v1/users/${known}/follow`)).status).toBe(204);

    const suggested = (await viewer.request('GET', '/api/v1/users/suggested')).body.items as { username: string }[];
    const names = suggested.map((s) => s.username);
    expect(names).toContain(star);
    expect(names).not.toContain(known); // followed already
    expect(names).not.toContain(`${p}_viewer`); // yourself
    expect(suggested[0]).toEqual({ username: star, followerCount: 5 });

    const page = await viewer.request('GET', `/people?q=${p}_st`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(String(page.body)).toContain(`href="/u/${star}"`);
    // Logged out: everyone's most followed.
    const anonymous = (await new Client(app.url).request('GET', '/api/v1/users/suggested')).body.items;
    expect(anonymous.map((s: { username: string }) => s.username)).toContain(known);
  });

  it('keeps "suggested" from being a username (it is a path of the API)', async () => {
    const res = await new Client(app.url).request('POST', '/api/v1/users', {
      json: { username: 'suggested', password: 'correct horse battery' },
    });
    expect(res.status).toBe(409);
  });
});
