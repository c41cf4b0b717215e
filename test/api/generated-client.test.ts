import { readFile } from 'node:fs/promises';
import createClient from 'openapi-fetch';
import { describe, expect, it } from 'vitest';
import { password, pngImage, uniqueName, useApp } from '../support/app.ts';
import { generateClientTypes, schemaFile } from '../support/openapi/generate.ts';
import type { paths } from '../support/openapi/schema.d.ts';

const app = useApp();

describe('a client generated from the OpenAPI document', () => {
  it('is what the served document generates (npm run openapi:types)', async () => {
    const document = await (await fetch(`${app.url}/api/v1/openapi.json`)).json();
    expect(await generateClientTypes(document)).toBe(await readFile(schemaFile, 'utf8'));
  });

  it('signs up, logs in, uploads a photo and reads it in the feed, typed end to end', async () => {
    const api = createClient<paths>({ baseUrl: app.url });
    const username = uniqueName();

    const signUp = await api.POST('/api/v1/users', { body: { username, password } });
    expect(signUp.response.status).toBe(201);
    expect(signUp.data?.user.username).toBe(username);

    const logIn = await api.POST('/api/v1/sessions', { body: { username, password } });
    expect(logIn.response.status).toBe(201);
    const token = logIn.data?.token;
    expect(token).toBeTypeOf('string');
    const auth = { headers: { authorization: `Bearer ${token}` } };

    const png = await pngImage(40, 30);
    const upload = await api.POST('/api/v1/photos', {
      ...auth,
      body: { file: new Blob([new Uint8Array(png)], { type: 'image/png' }), caption: 'through the client' },
      bodySerializer(body) {
        const form = new FormData();
        if (body.caption !== undefined) form.append('caption', body.caption);
        form.append('file', body.file, 'photo.png');
        return form;
      },
    });
    expect(upload.response.status).toBe(202);
    const id = upload.data?.photo.id ?? '';
    expect(id).not.toBe('');

    let status: string | undefined;
    for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
      const read = await api.GET('/api/v1/photos/{id}', { ...auth, params: { path: { id } } });
      status = read.data?.photo.status;
      if (status !== 'processing') break;
    }
    expect(status).toBe('ready');

    const feed = await api.GET('/api/v1/feed', auth);
    expect(feed.response.status).toBe(200);
    expect(feed.data?.items.map((p) => ({ id: p.id, owner: p.owner, caption: p.caption }))).toContainEqual({
      id,
      owner: username,
      caption: 'through the client',
    });

    // The error shape is typed too: a bad username is a 400 with a code.
    const bad = await api.POST('/api/v1/users', { body: { username: 'no spaces allowed', password } });
    expect(bad.response.status).toBe(400);
    expect(bad.error?.error.code).toBeTypeOf('string');
  });
});
