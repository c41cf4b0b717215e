import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Client, password, pngImage, uniqueName, useApp } from '../support/app.ts';

// A short time to live, so that one test can see an answer forgotten while its write is not.
const app = useApp({ idempotencyTtlSeconds: 2, idempotencyLeaseSeconds: 2 });
const keyed = (key: string, headers: Record<string, string> = {}) => ({ ...headers, 'idempotency-key': key });

const photosOf = async (c: Client, name: string) =>
  (await c.request('GET', `/api/v1/users/${name}/photos`)).body.items as { id: string; caption: string }[];
const uploadForm = (file: Buffer, caption: string) => {
  // A new multipart body (a new boundary) each time, as a client that sends it again builds it.
  const form = new FormData();
  form.append('caption', caption);
  form.append('file', new Blob([new Uint8Array(file)]), 'p.png');
  return form;
};

describe('Idempotency-Key on the API', () => {
  it('a sign-up sent twice with one key creates one account: the repeat gets the first answer', async () => {
    const c = new Client(app.url);
    const username = uniqueName();
    const key = randomUUID();
    const first = await c.request('POST', '/api/v1/users', { json: { username, password }, headers: keyed(key) });
    const again = await c.request('POST', '/api/v1/users', { json: { username, password }, headers: keyed(key) });
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    // Without the key the same sign-up is what it always was: the name is taken.
    expect((await c.request('POST', '/api/v1/users', { json: { username, password } })).status).toBe(409);
    const found = (await c.request('GET', `/api/v1/users?q=${username}`)).body.items;
    expect(found).toHaveLength(1);
  });

  it('the same key with another body is a 422, and changes nothing', async () => {
    const c = new Client(app.url);
    const key = randomUUID();
    const username = uniqueName();
    expect(
      (await c.request('POST', '/api/v1/users', { json: { username, password }, headers: keyed(key) })).status,
    ).toBe(201);
    const other = uniqueName();
    const res = await c.request('POST', '/api/v1/users', {
      json: { username: other, password },
      headers: keyed(key),
    });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect((await c.request('GET', `/api/v1/users/${other}`)).status).toBe(404);
  });

  it('an upload sent twice with one key makes one photo; another caption under the key is a 422', async () => {
    const { c, name } = await app.loggedIn();
    const png = await pngImage();
    const key = randomUUID();
    const first = await c.request('POST', '/api/v1/photos', { body: uploadForm(png, 'once'), headers: keyed(key) });
    const again = await c.request('POST', '/api/v1/photos', { body: uploadForm(png, 'once'), headers: keyed(key) });
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.body.photo.id).toBe(first.body.photo.id);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const changed = await c.request('POST', '/api/v1/photos', {
      body: uploadForm(png, 'twice'),
      headers: keyed(key),
    });
    expect(changed.status).toBe(422);
    await c.waitForPhoto(first.body.photo.id);
    expect((await photosOf(c, name)).map((p) => p.caption)).toEqual(['once']);
  });

  it('an upload repeated after its answer was forgotten (as after a crash) still makes one photo', async () => {
    const { c, name } = await app.loggedIn();
    const png = await pngImage();
    const key = randomUUID();
    const first = await c.request('POST', '/api/v1/photos', { body: uploadForm(png, 'kept'), headers: keyed(key) });
    expect(first.status).toBe(202);
    // The stored answer expires (2 s here); the photo remembers the key it was made with.
    await new Promise((r) => setTimeout(r, 2300));
    const again = await c.request('POST', '/api/v1/photos', { body: uploadForm(png, 'kept'), headers: keyed(key) });
    expect(again.status).toBe(202);
    expect(again.body.photo.id).toBe(first.body.photo.id);
    expect(await photosOf(c, name)).toHaveLength(1);
  });

  it('concurrent repeats of one upload make one photo (the others wait with 409 or get the answer)', async () => {
    const { c, name } = await app.loggedIn();
    const png = await pngImage();
    const key = randomUUID();
    const answers = await Promise.all(
      Array.from({ length: 5 }, () =>
        c.request('POST', '/api/v1/photos', { body: uploadForm(png, 'race'), headers: keyed(key) }),
      ),
    );
    for (const a of answers) expect([202, 409]).toContain(a.status);
    const conflicts = answers.filter((a) => a.status === 409);
    for (const a of conflicts) {
      expect(a.headers.get('retry-after')).toBe('1');
      expect(a.body.error.code).toBe('IDEMPOTENCY_IN_PROGRESS');
    }
    expect(new Set(answers.filter((a) => a.status === 202).map((a) => a.body.photo.id)).size).toBe(1);
    await new Promise((r) => setTimeout(r, 200));
    expect(await photosOf(c, name)).toHaveLength(1);
  });

  it('a like, a follow and a delete repeated with their keys get their first answers', async () => {
    const owner = await app.loggedIn();
    const fan = await app.loggedIn();
    const id = (await owner.c.upload(await pngImage())).body.photo.id as string;
    await owner.c.waitForPhoto(id);
    for (const path of [`/api/v1/photos/${id}/like`, `/api/v1/users/${owner.name}/follow`]) {
      const key = randomUUID();
      const first = await fan.c.request('PUT', path, { headers: keyed(key) });
      const again = await fan.c.request('PUT', path, { headers: keyed(key) });
      expect([first.status, again.status]).toEqual([204, 204]);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
    }
    const photo = (await fan.c.request('GET', `/api/v1/photos/${id}`)).body.photo;
    expect(photo).toMatchObject({ likeCount: 1, likedByMe: true });
    const profile = (await fan.c.request('GET', `/api/v1/users/${owner.name}`)).body;
    expect(profile).toMatchObject({ following: true, user: { followerCount: 1 } });
    // A delete repeated: its first answer (204), not the 404 a second delete would get.
    const key = randomUUID();
    expect((await owner.c.request('DELETE', `/api/v1/photos/${id}`, { headers: keyed(key) })).status).toBe(204);
    const again = await owner.c.request('DELETE', `/api/v1/photos/${id}`, { headers: keyed(key) });
    expect(again.status).toBe(204);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect((await owner.c.request('DELETE', `/api/v1/photos/${id}`)).status).toBe(404);
  });

  it("a log-in repeated with its key gets the first session; keys are per account: another user's same key runs", async () => {
    const c = new Client(app.url);
    const username = await c.signUp();
    const key = randomUUID();
    const first = await c.request('POST', '/api/v1/sessions', { json: { username, password }, headers: keyed(key) });
    const again = await c.request('POST', '/api/v1/sessions', { json: { username, password }, headers: keyed(key) });
    expect(first.status).toBe(201);
    expect(again.body.token).toBe(first.body.token);
    // Two accounts may pick the same key: each is its own.
    const a = await app.loggedIn();
    const b = await app.loggedIn();
    const shared = randomUUID();
    const photo = (await a.c.upload(await pngImage())).body.photo.id as string;
    await a.c.waitForPhoto(photo);
    expect((await a.c.request('PUT', `/api/v1/photos/${photo}/like`, { headers: keyed(shared) })).status).toBe(204);
    const other = await b.c.request('PUT', `/api/v1/photos/${photo}/like`, { headers: keyed(shared) });
    expect(other.status).toBe(204);
    expect(other.headers.get('idempotent-replayed')).toBeNull();
    expect((await a.c.request('GET', `/api/v1/photos/${photo}`)).body.photo.likeCount).toBe(2);
  });

  it('a malformed key is a 400 and does nothing', async () => {
    const c = new Client(app.url);
    const username = uniqueName();
    for (const bad of ['x'.repeat(256), 'two words']) {
      const res = await c.request('POST', '/api/v1/users', { json: { username, password }, headers: keyed(bad) });
      expect(res.status).toBe(400);
    }
    expect((await c.request('GET', `/api/v1/users/${username}`)).status).toBe(404);
  });
});

describe("the site's forms", () => {
  const formOf = (html: string, action: string) => {
    const form = html.slice(html.indexOf(`action="${action}"`));
    const field = (name: string) => new RegExp(`name="${name}" value="([^"]+)"`).exec(form)?.[1] ?? '';
    return { csrf: field('_csrf'), key: field('_idempotency_key') };
  };
  const post = (c: Client, path: string, fields: Record<string, string>) =>
    c.request('POST', path, {
      body: new URLSearchParams(fields).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
    });

  it('every form carries a fresh key; a sign-up form sent twice makes one account and both answers are the same', async () => {
    const c = new Client(app.url);
    const page = (await c.request('GET', '/signup', { headers: { accept: 'text/html' } })).body as string;
    const { csrf, key } = formOf(page, '/signup');
    expect(key).toMatch(/^[0-9a-f-]{36}$/);
    expect(formOf((await c.request('GET', '/signup')).body, '/signup').key).not.toBe(key);
    const username = uniqueName();
    const fields = { _csrf: csrf, _idempotency_key: key, username, password };
    const first = await post(c, '/signup', fields);
    const again = await post(new Client(app.url), '/signup', fields);
    expect(first.status).toBe(303);
    expect(again.status).toBe(303);
    expect(again.headers.get('location')).toBe(first.headers.get('location'));
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect((await c.request('GET', `/api/v1/users?q=${username}`)).body.items).toHaveLength(1);
  });

  it('the upload form sent twice makes one photo', async () => {
    const { c, name } = await app.loggedIn();
    const cookieClient = new Client(app.url);
    // The form's session is the browser's cookie.
    await cookieClient.logIn(name);
    const page = (await cookieClient.request('GET', '/upload', { headers: { accept: 'text/html' } })).body as string;
    const { csrf, key } = formOf(page, '/upload');
    const png = await pngImage();
    const send = () => {
      const form = uploadForm(png, 'from the form');
      form.append('_csrf', csrf);
      form.append('_idempotency_key', key);
      return cookieClient.request('POST', '/upload', { body: form, headers: { accept: 'text/html' } });
    };
    const first = await send();
    const again = await send();
    expect(first.status).toBe(303);
    expect(again.headers.get('location')).toBe(first.headers.get('location'));
    expect(await photosOf(c, name)).toHaveLength(1);
  });
});
