import { describe, expect, it } from 'vitest';
import { Client, uniqueName, useApp } from '../support/app.ts';

// A site of its own: users, and nobody follows anybody yet.
const app = useApp();

async function person(name = uniqueName('n')): Promise<{ c: Client; name: string }> {
  const c = new Client(app.url);
  await c.signUp(name);
  await c.logIn(name);
  // An authenticated request: today's activity.
  expect((await c.request('GET', '/api/v1/feed')).status).toBe(200);
  return { c, name };
}

const html = { accept: 'text/html' };

describe('people on a new site (no follows yet)', () => {
  it('suggests the recently active accounts instead of "nobody", each with a Follow button that comes back here', async () => {
    const others = [await person(), await person(), await person()];
    const viewer = await person();
    const suggested = (await viewer.c.request('GET', '/api/v1/users/suggested')).body.items;
    expect(suggested.map((s: { username: string }) => s.username).sort()).toEqual(others.map((o) => o.name).sort());
    for (const s of suggested) expect(s).toMatchObject({ followerCount: 0, recentlyActive: true });

    const page = String((await viewer.c.request('GET', '/people', { headers: html })).body);
    expect(page).not.toContain('Nobody to suggest yet');
    expect(page).toContain('recently active');
    const target = others[0]?.name as string;
    // The Follow button is a form of the page, with its CSRF token and an Idempotency-Key.
    const form = new RegExp(
      `<form method="post" action="/u/${target}/follow" class="inline"><input type="hidden" name="_csrf" value="([^"]+)"><input type="hidden" name="_idempotency_key" value="([^"]+)"><input type="hidden" name="_return" value="/people">`,
    ).exec(page);
    expect(form).not.toBeNull();
    const cookie = new Client(app.url);
    cookie.cookies = viewer.c.cookies;
    // A cookie session (the forms'), the one the page was rendered for.
    const res = await viewer.c.request('POST', `/u/${target}/follow`, {
      body: new URLSearchParams({
        _csrf: form?.[1] ?? '',
        _idempotency_key: form?.[2] ?? '',
        _return: '/people',
      }).toString(),
      headers: { ...html, 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/people');
    expect((await viewer.c.request('GET', `/api/v1/users/${target}`)).body.following).toBe(true);

    // Searching shows the state: Unfollow for the one followed, Follow for the others, none for yourself.
    const found = String((await viewer.c.request('GET', `/people?q=${target}`, { headers: html })).body);
    expect(found).toContain(`action="/u/${target}/unfollow"`);
    const self = String((await viewer.c.request('GET', `/people?q=${viewer.name}`, { headers: html })).body);
    expect(self).not.toContain(`action="/u/${viewer.name}/follow"`);
    expect((await viewer.c.request('GET', `/api/v1/users?q=${target}`)).body.items).toEqual([
      { username: target, followerCount: 1, following: true },
    ]);
  });

  it('a follow form names only the people page to return to: any other place goes to the profile', async () => {
    const a = await person();
    const b = await person();
    const page = String((await a.c.request('GET', `/u/${b.name}`, { headers: html })).body);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)?.[1] ?? '';
    const res = await a.c.request('POST', `/u/${b.name}/follow`, {
      body: new URLSearchParams({ _csrf: csrf, _return: 'https://evil.example/' }).toString(),
      headers: { ...html, 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`/u/${b.name}`);
  });
});
