import { describe, expect, it } from 'vitest';
import { Client, password, startApp, uniqueName, useApp } from '../support/app.ts';

const app = useApp();

const expectError = (res: { status: number; body: any; headers: Headers }, status: number, code?: string) => {
  expect(res.status).toBe(status);
  expect(res.body.error.requestId).toBe(res.headers.get('x-request-id'));
  expect(typeof res.body.error.message).toBe('string');
  if (code) expect(res.body.error.code).toBe(code);
};

describe('POST /api/v1/users', () => {
  it('creates an account', async () => {
    const c = new Client(app.url);
    const name = uniqueName();
    const res = await c.request('POST', '/api/v1/users', { json: { username: name, password } });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ user: { username: name } });
    const profile = await c.request('GET', `/api/v1/users/${name}`);
    expect(profile.body.user).toMatchObject({
      username: name,
      followerCount: 0,
      followingCount: 0,
      photoCount: 0,
    });
  });

  it('refuses a duplicate username with 409', async () => {
    const c = new Client(app.url);
    const name = await c.signUp();
    expectError(
      await c.request('POST', '/api/v1/users', { json: { username: name, password: 'another password' } }),
      409,
      'CONFLICT',
    );
    // The first password still works: the duplicate changed nothing.
    expect((await c.request('POST', '/api/v1/sessions', { json: { username: name, password } })).status).toBe(201);
  });

  it.each([
    ['a username too short', { username: 'ab', password }],
    ['a username with capitals', { username: 'Alice_x', password }],
    ['a username too long', { username: 'a'.repeat(31), password }],
    ['a password too short', { username: 'shortpw_user', password: 'short' }],
    ['a missing password', { username: 'nopw_user' }],
    ['an extra field', { username: 'extra_user', password, admin: true }],
    ['a wrong type', { username: 42, password }],
  ])('answers 400 to %s and creates nothing', async (_what, body) => {
    const c = new Client(app.url);
    expectError(await c.request('POST', '/api/v1/users', { json: body }), 400, 'VALIDATION');
    if (
      typeof (body as { username: unknown }).username === 'string' &&
      /^[a-z0-9_]{3,30}$/.test((body as { username: string }).username)
    ) {
      expect((await c.request('GET', `/api/v1/users/${(body as { username: string }).username}`)).status).toBe(404);
    }
  });

  it('answers 400 to malformed JSON and 415 to an unknown content type', async () => {
    const c = new Client(app.url);
    const bad = await c.request('POST', '/api/v1/users', {
      body: '{"username":',
      headers: { 'content-type': 'application/json' },
    });
    expectError(bad, 400, 'INVALID_JSON');
    const xml = await c.request('POST', '/api/v1/users', {
      body: '<user/>',
      headers: { 'content-type': 'application/xml' },
    });
    expectError(xml, 415);
    expectError(
      await c.request('POST', '/api/v1/users', { body: '', headers: { 'content-type': 'application/json' } }),
      400,
    );
  });
});

describe('sessions', () => {
  it('logs in with a HttpOnly SameSite=Lax cookie and a bearer token for mobile clients', async () => {
    const c = new Client(app.url);
    const name = await c.signUp();
    const res = await c.logIn(name);
    expect(res.status).toBe(201);
    expect(typeof res.body.token).toBe('string');
    const cookie = res.headers.getSetCookie().find((s) => s.startsWith('sid='));
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
    expect(cookie).not.toMatch(/Secure/i); // plain HTTP here; TLS adds Secure

    expect((await c.request('GET', '/api/v1/feed')).status).toBe(200);
    const mobile = new Client(app.url);
    mobile.token = res.body.token;
    expect((await mobile.request('GET', '/api/v1/feed', { bearer: true })).status).toBe(200);
  });

  it('rotates the session id at login and ends the old session', async () => {
    const c = new Client(app.url);
    const name = await c.signUp();
    const first = (await c.logIn(name)).body.token as string;
    const second = (await c.logIn(name)).body.token as string;
    expect(second).not.toBe(first);
    const old = new Client(app.url);
    old.token = first;
    expectError(await old.request('GET', '/api/v1/feed', { bearer: true }), 401);
  });

  it('refuses wrong passwords and unknown users alike with 401', async () => {
    const c = new Client(app.url);
    const name = await c.signUp();
    expectError(
      await c.request('POST', '/api/v1/sessions', { json: { username: name, password: 'wrong password!' } }),
      401,
      'UNAUTHENTICATED',
    );
    expectError(await c.request('POST', '/api/v1/sessions', { json: { username: uniqueName(), password } }), 401);
    expect(c.cookies.has('sid')).toBe(false);
  });

  it('logs out with 204 and the session stops working', async () => {
    const c = new Client(app.url);
    await c.logIn(await c.signUp());
    const token = c.token;
    expect((await c.request('DELETE', '/api/v1/sessions/current')).status).toBe(204);
    expectError(await c.request('GET', '/api/v1/feed'), 401);
    const mobile = new Client(app.url);
    mobile.token = token;
    expectError(await mobile.request('GET', '/api/v1/feed', { bearer: true }), 401);
    expectError(await mobile.request('DELETE', '/api/v1/sessions/current'), 401);
  });

  it('refuses a cookie-authenticated API write from another origin', async () => {
    const c = new Client(app.url);
    const name = await c.signUp();
    await c.logIn(name);
    const other = await new Client(app.url).signUp();
    const res = await c.request('PUT', `/api/v1/users/${other}/follow`, {
      headers: { origin: 'https://evil.example' },
    });
    expectError(res, 403);
    expect((await c.request('GET', `/api/v1/users/${other}`)).body.user.followerCount).toBe(0);
  });
});

describe('GET /api/v1/users/{username}', () => {
  it('answers 404 for an unknown user and 400 for an invalid name', async () => {
    const c = new Client(app.url);
    expectError(await c.request('GET', `/api/v1/users/${uniqueName()}`), 404, 'NOT_FOUND');
    expectError(await c.request('GET', '/api/v1/users/NOT-valid!'), 400);
  });
});

describe('rate limits', () => {
  it('limits login attempts per client with 429', async () => {
    const limited = await startApp({ loginRateLimit: 3, signupRateLimit: 2 });
    try {
      const c = new Client(limited.url);
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        statuses.push(
          (await c.request('POST', '/api/v1/sessions', { json: { username: 'nobody_here', password } })).status,
        );
      }
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
      const signups: number[] = [];
      for (let i = 0; i < 3; i++) {
        signups.push((await c.request('POST', '/api/v1/users', { json: { username: uniqueName(), password } })).status);
      }
      expect(signups).toEqual([201, 201, 429]);
      const res = await c.request('POST', '/api/v1/users', { json: { username: uniqueName(), password } });
      expectError(res, 429, 'RATE_LIMITED');
    } finally {
      await limited.stop();
      await limited.remove();
    }
  });
});

describe('behind TLS', () => {
  it('marks cookies Secure, with the __Host- prefix, when the proxy says the request came over HTTPS', async () => {
    const proxied = await startApp({ trustProxy: true });
    try {
      const c = new Client(proxied.url);
      const name = await c.signUp();
      const res = await c.request('POST', '/api/v1/sessions', {
        json: { username: name, password },
        headers: { 'x-forwarded-proto': 'https' },
      });
      expect(res.status).toBe(201);
      const cookie = res.headers.getSetCookie().find((s) => s.startsWith('__Host-sid='));
      expect(cookie).toMatch(/;\s*Secure/i);
      expect(cookie).toMatch(/;\s*Path=\//i);
      expect(cookie).not.toMatch(/Domain=/i);
      // The session works under its prefixed name.
      const token = /^__Host-sid=([^;]+)/.exec(cookie ?? '')?.[1];
      const me = await c.request('GET', '/api/v1/feed', {
        headers: { cookie: `__Host-sid=${token}`, 'x-forwarded-proto': 'https' },
      });
      expect(me.status).toBe(200);
    } finally {
      await proxied.stop();
      await proxied.remove();
    }
  });
});
