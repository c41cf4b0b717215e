import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Client, password, pngImage, uniqueName, useApp } from '../support/app.ts';

const app = useApp();

const csrfFrom = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
const form = (fields: Record<string, string>) => ({
  body: new URLSearchParams(fields).toString(),
  headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
});

/** Signs up through the HTML form, as a browser without JavaScript would. */
const browserSignUp = async () => {
  const c = new Client(app.url);
  const page = await c.request('GET', '/signup', { headers: { accept: 'text/html' } });
  const username = uniqueName();
  const res = await c.request('POST', '/signup', form({ _csrf: csrfFrom(page.body), username, password }));
  expect(res.status).toBe(303);
  return { c, username };
};

describe('HTML pages', () => {
  it('sign up, upload, see the photo with its size, follow and like, all through forms', async () => {
    const { c, username } = await browserSignUp();
    expect(c.cookies.has('sid')).toBe(true);
    const uploadPage = await c.request('GET', '/upload', { headers: { accept: 'text/html' } });
    const body = new FormData();
    body.append('_csrf', csrfFrom(uploadPage.body));
    body.append('caption', 'from a form');
    body.append('file', new Blob([new Uint8Array(await pngImage(400, 300))]), 'x.png');
    const posted = await c.request('POST', '/upload', { body });
    expect(posted.status).toBe(303);
    const id = /\/p\/([A-Za-z0-9_-]{16})/.exec(posted.headers.get('location') ?? '')?.[1] as string;
    await c.waitForPhoto(id);

    const feed = await c.request('GET', '/', { headers: { accept: 'text/html' } });
    expect(feed.body).toContain('from a form');
    expect(feed.body).toMatch(/<img src="[^"]+\/media\/photos\/[^"]+\/thumb\.webp" width="320" height="240"/);

    const other = await browserSignUp();
    const profile = await other.c.request('GET', `/u/${username}`, { headers: { accept: 'text/html' } });
    expect(profile.body).toContain('0 followers');
    const followed = await other.c.request('POST', `/u/${username}/follow`, form({ _csrf: csrfFrom(profile.body) }));
    expect(followed.status).toBe(303);
    expect((await other.c.request('GET', `/u/${username}`, { headers: { accept: 'text/html' } })).body).toContain(
      '1 followers',
    );
    const photo = await other.c.request('GET', `/p/${id}`, { headers: { accept: 'text/html' } });
    await other.c.request('POST', `/p/${id}/like`, form({ _csrf: csrfFrom(photo.body) }));
    expect((await other.c.request('GET', `/p/${id}`, { headers: { accept: 'text/html' } })).body).toContain('1 like<');
  });

  it('refuses form posts without the CSRF token and changes nothing', async () => {
    const { c } = await browserSignUp();
    const target = await browserSignUp();
    const res = await c.request('POST', `/u/${target.username}/follow`, form({}));
    expect(res.status).toBe(403);
    const forged = await c.request('POST', `/u/${target.username}/follow`, form({ _csrf: 'forged-token-value' }));
    expect(forged.status).toBe(403);
    const profile = await c.request('GET', `/api/v1/users/${target.username}`);
    expect(profile.body.user.followerCount).toBe(0);
    const anon = new Client(app.url);
    const signup = await anon.request('POST', '/signup', form({ username: uniqueName(), password }));
    expect(signup.status).toBe(403);
  });

  it('shows the form again with a message on bad input', async () => {
    const c = new Client(app.url);
    const page = await c.request('GET', '/signup', { headers: { accept: 'text/html' } });
    const res = await c.request(
      'POST',
      '/signup',
      form({ _csrf: csrfFrom(page.body), username: 'X!', password: 'short' }),
    );
    expect(res.status).toBe(400);
    expect(res.body).toContain('class="flash"');
  });

  it('escapes user content', async () => {
    const { c, username } = await browserSignUp();
    await c.logIn(username);
    const id = (await c.upload(await pngImage(), '<script>alert(1)</script>')).body.photo.id;
    const page = await c.request('GET', `/p/${id}`, { headers: { accept: 'text/html' } });
    expect(page.body).not.toContain('<script>alert(1)</script>');
    expect(page.body).toContain('&lt;script&gt;');
  });

  it('serves the stylesheet under a content hash with a long cache lifetime', async () => {
    const c = new Client(app.url);
    const home = await c.request('GET', '/', { headers: { accept: 'text/html' } });
    const href = /href="(\/static\/style\.[0-9a-f]{10}\.css)"/.exec(home.body)?.[1];
    expect(href).toBeDefined();
    const css = await c.request('GET', href!);
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toContain('text/css');
    expect(css.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await c.request('GET', '/static/style.0000000000.css')).status).toBe(404);
  });

  it('sends security headers', async () => {
    const res = await new Client(app.url).request('GET', '/', { headers: { accept: 'text/html' } });
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    // same-origin, not no-referrer: with no-referrer browsers send 'Origin: null' on the site's own form posts.
    expect(res.headers.get('referrer-policy')).toBe('same-origin');
  });
});

describe('operations endpoints', () => {
  it('answers /healthz and /readyz', async () => {
    const c = new Client(app.url);
    // With the git commit this checkout runs.
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    expect((await c.request('GET', '/healthz')).body).toEqual({ status: 'ok', version: head, receivingBody: 0 });
    const ready = await c.request('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toEqual({ db: 'ok', blobs: 'ok' });
  });

  it('carries the caller request id, or makes one', async () => {
    const c = new Client(app.url);
    const given = await c.request('GET', '/api/v1/users/nobody_at_all', {
      headers: { 'x-request-id': 'trace-abc.123' },
    });
    expect(given.headers.get('x-request-id')).toBe('trace-abc.123');
    expect(given.body.error.requestId).toBe('trace-abc.123');
    const made = await c.request('GET', '/healthz', { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('serves Prometheus metrics with rate, errors and duration per route on its own listener, not the public port', async () => {
    const c = new Client(app.url);
    await c.request('GET', '/api/v1/users/nobody_here_x');
    expect((await c.request('GET', '/metrics')).status).toBe(404);
    const res = await new Client(app.metricsUrl).request('GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.body).toMatch(
      /http_requests_total\{method="GET",route="\/api\/v1\/users\/:username",status="404"\} \d+/,
    );
    expect(res.body).toContain('http_request_duration_seconds_bucket');
    expect(res.body).toContain('http_request_errors_total');
    expect(res.body).toContain('scaleout_signups_total');
    expect(res.body).toContain('nodejs_eventloop_lag_seconds');
  });

  it('counts database queries per request by route, and cache lookups by data class, result and level', async () => {
    const { c } = await app.loggedIn();
    const id = (await c.upload(await pngImage())).body.photo.id as string;
    await c.waitForPhoto(id);
    const metric = async (pattern: RegExp) => {
      const body = (await new Client(app.metricsUrl).request('GET', '/metrics')).body as string;
      return Number(pattern.exec(body)?.[1] ?? 0);
    };
    const queriesCount = /scaleout_db_queries_per_request_count\{route="\/api\/v1\/photos\/:id"\} (\d+)/;
    const zeroQueries = /scaleout_db_queries_per_request_bucket\{le="0",route="\/api\/v1\/photos\/:id"\} (\d+)/;
    const photoHitsL1 = /scaleout_cache_lookups_total\{class="photo",result="hit",level="l1"\} (\d+)/;
    const [countBefore, zeroBefore, hitsBefore] = [
      await metric(queriesCount),
      await metric(zeroQueries),
      await metric(photoHitsL1),
    ];
    for (let i = 0; i < 3; i++) expect((await c.request('GET', `/api/v1/photos/${id}`)).status).toBe(200);
    expect(await metric(queriesCount)).toBe(countBefore + 3);
    // Warm, a photo read asks the database nothing: the session, the photo and "liked by me" are cached.
    expect(await metric(zeroQueries)).toBeGreaterThanOrEqual(zeroBefore + 2);
    expect(await metric(photoHitsL1)).toBeGreaterThanOrEqual(hitsBefore + 3);
  });

  it('publishes an OpenAPI document and a docs page', async () => {
    const c = new Client(app.url);
    const doc = await c.request('GET', '/api/v1/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toMatch(/^3\./);
    for (const path of [
      '/api/v1/users',
      '/api/v1/sessions',
      '/api/v1/photos/{id}',
      '/api/v1/feed',
      '/api/v1/users/{username}/follow',
    ]) {
      expect(Object.keys(doc.body.paths)).toContain(path);
    }
    expect(Object.keys(doc.body.paths).some((p: string) => !p.startsWith('/api/v1'))).toBe(false);
    const docs = await fetch(`${app.url}/api/v1/docs`, { redirect: 'follow' });
    expect(docs.status).toBe(200);
    expect(await docs.text()).toContain('swagger');
  });

  it('answers unknown routes with the JSON error shape', async () => {
    const res = await new Client(app.url).request('GET', '/api/v1/nothing-here');
    expect(res.status).toBe(404);
    expect(res.body.error).toMatchObject({ code: 'NOT_FOUND' });
  });
});
