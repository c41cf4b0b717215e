import { connect } from 'node:net';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { Client, password, pngImage, uniqueName, useApp } from '../support/app.ts';

// Each describe gets its own site: the limits it tests are counted per site.

/** The CSRF token of a page's forms (and the nonce cookie the client now holds). */
async function formToken(c: Client, path: string): Promise<string> {
  const page = await c.request('GET', path, { headers: { accept: 'text/html' } });
  const token = /name="_csrf" value="([^"]+)"/.exec(String(page.body))?.[1];
  if (!token) throw new Error(`no CSRF token on ${path}`);
  return token;
}

const formPost = (c: Client, path: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
  c.request('POST', path, {
    body: new URLSearchParams(fields).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', ...headers },
  });

const wrongLogIn = (c: Client, username: string, headers: Record<string, string> = {}) =>
  c.request('POST', '/api/v1/sessions', { json: { username, password: 'not the password' }, headers });

describe('rate limits a client cannot steer', () => {
  const app = useApp({ loginRateLimit: 10, accountLoginFailures: 1000 });

  it('ignores a spoofed X-Forwarded-For: the 11th wrong password in a minute gets 429', async () => {
    const c = new Client(app.url);
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      const res = await wrongLogIn(c, uniqueName(), {
        'x-forwarded-for': `203.0.113.${i + 1}`,
        'x-real-ip': `198.51.100.${i}`,
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([...Array(10).fill(401), 429]);
    // The same budget covers the site's log-in form.
    const form = await formPost(c, '/login', { _csrf: await formToken(c, '/login'), username: 'someone', password });
    expect(form.status).toBe(429);
  });
});

describe('one budget for the API and the site', () => {
  const app = useApp({ loginRateLimit: 10, accountLoginFailures: 1000 });

  it('counts log-ins through the form and the API together', async () => {
    const c = new Client(app.url);
    const token = await formToken(c, '/login');
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await wrongLogIn(c, uniqueName())).status);
    for (let i = 0; i < 5; i++) {
      statuses.push(
        (await formPost(c, '/login', { _csrf: token, username: uniqueName(), password: 'wrong one!!' })).status,
      );
    }
    statuses.push((await wrongLogIn(c, uniqueName())).status);
    expect(statuses).toEqual([...Array(5).fill(401), ...Array(5).fill(401), 429]);
  });
});

describe('per-account log-in back-off', () => {
  // Behind a trusted proxy each try may come from another address, as from a botnet.
  const app = useApp({ trustProxy: true, loginRateLimit: 1000, accountLoginFailures: 3 });
  const from = (address: string) => ({ 'x-forwarded-for': address });
  const rightLogIn = (c: Client, username: string, address: string) =>
    c.request('POST', '/api/v1/sessions', { json: { username, password }, headers: from(address) });

  it('backs off the address that failed, not the owner at another one, and a success resets it', async () => {
    const c = new Client(app.url);
    const name = await c.signUp();
    for (let i = 0; i < 3; i++) expect((await wrongLogIn(c, name, from('203.0.113.1'))).status).toBe(401);
    // The address that guessed waits, even with the right password...
    const refused = await rightLogIn(c, name, '203.0.113.1');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // ... and the owner, elsewhere, is not locked out (OWASP: lockout must not be a denial of service).
    expect((await rightLogIn(new Client(app.url), name, '198.51.100.7')).status).toBe(201);
    // Another account is not affected.
    const other = await new Client(app.url).signUp();
    expect((await new Client(app.url).logIn(other)).status).toBe(201);

    await new Promise((r) => setTimeout(r, 1100));
    expect((await rightLogIn(c, name, '203.0.113.1')).status).toBe(201);
    expect((await wrongLogIn(c, name, from('203.0.113.1'))).status).toBe(401);
    expect((await rightLogIn(c, name, '203.0.113.1')).status).toBe(201);
  });

  it('backs the account off for every address, for a minute at most, after many failures from many addresses', async () => {
    const c = new Client(app.url);
    const name = await c.signUp();
    // 20 × 3 failures, each address below its own limit: a botnet guessing one password.
    for (let i = 0; i < 60; i++) {
      expect((await wrongLogIn(c, name, from(`10.0.${Math.floor(i / 2)}.${(i % 2) + 1}`))).status).toBe(401);
    }
    const refused = await rightLogIn(c, name, '198.51.100.8');
    expect(refused.status).toBe(429);
    const wait = Number(refused.headers.get('retry-after'));
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(60);
  });
});

describe('no cross-site log-in or sign-up', () => {
  const app = useApp();

  it('refuses a form-encoded log-in to the API (what another site’s form sends) and sets no cookie', async () => {
    const name = await new Client(app.url).signUp();
    for (const headers of [{ origin: 'https://evil.example' }, {}] as Record<string, string>[]) {
      const res = await new Client(app.url).request('POST', '/api/v1/sessions', {
        body: new URLSearchParams({ username: name, password }).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(res.headers.getSetCookie()).toEqual([]);
    }
    const plain = await new Client(app.url).request('POST', '/api/v1/users', {
      body: JSON.stringify({ username: uniqueName(), password }),
      headers: { 'content-type': 'text/plain' },
    });
    expect(plain.status).toBe(415);
  });

  it('refuses an unsafe API request from another site, logged in or not', async () => {
    const username = uniqueName();
    const signUp = await new Client(app.url).request('POST', '/api/v1/users', {
      json: { username, password },
      headers: { origin: 'https://evil.example' },
    });
    expect(signUp.status).toBe(403);
    expect((await new Client(app.url).request('GET', `/api/v1/users/${username}`)).status).toBe(404);

    const name = await new Client(app.url).signUp();
    for (const headers of [
      { origin: 'https://evil.example' },
      { 'sec-fetch-site': 'cross-site' },
      { origin: 'null' },
    ] as Record<string, string>[]) {
      const res = await new Client(app.url).request('POST', '/api/v1/sessions', {
        json: { username: name, password },
        headers,
      });
      expect(res.status).toBe(403);
      expect(res.headers.getSetCookie()).toEqual([]);
    }
    // The site's own pages and non-browser clients still log in.
    const same = await new Client(app.url).request('POST', '/api/v1/sessions', {
      json: { username: name, password },
      headers: { origin: app.url, 'sec-fetch-site': 'same-origin' },
    });
    expect(same.status).toBe(201);
  });

  it('binds the forms’ token to a secret and the session: a planted csrf cookie is useless', async () => {
    const name = await new Client(app.url).signUp();
    const attacker = new Client(app.url);
    attacker.cookies.set('csrf', 'planted-by-the-attacker-0123456789');
    const planted = await formPost(attacker, '/login', {
      _csrf: 'planted-by-the-attacker-0123456789',
      username: name,
      password,
    });
    expect(planted.status).toBe(403);
    expect(planted.headers.getSetCookie().some((c) => c.startsWith('sid='))).toBe(false);

    // A real token from another site's page still fails on Origin.
    const c = new Client(app.url);
    const token = await formToken(c, '/login');
    const crossSite = await formPost(
      c,
      '/login',
      { _csrf: token, username: name, password },
      { origin: 'https://evil.example' },
    );
    expect(crossSite.status).toBe(403);

    const ok = await formPost(c, '/login', { _csrf: token, username: name, password }, { origin: app.url });
    expect(ok.status).toBe(303);
    // Logged in, the old anonymous token no longer fits: the session is part of it.
    const stale = await formPost(c, '/logout', { _csrf: token });
    expect(stale.status).toBe(403);
    expect((await formPost(c, '/logout', { _csrf: await formToken(c, '/') })).status).toBe(303);
  });
});

/** Sends raw bytes and returns the status code of the answer. */
function rawStatus(port: number, request: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(request));
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => {
      data += chunk;
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
  });
}

describe('a body that trickles in', () => {
  const app = useApp({ bodyTimeoutMs: 1000 });

  it('gets 408 and a closed connection once the body deadline passes, and creates nothing', async () => {
    const port = Number(new URL(app.url).port);
    const name = uniqueName();
    const started = Date.now();
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(
          `POST /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{"username":"${name}"`,
        );
      });
      // One more byte now and then, as a slow-body attacker sends them.
      const drip = setInterval(() => socket.write(' '), 300);
      let data = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk) => {
        data += chunk;
      });
      socket.on('error', reject);
      socket.on('close', () => {
        clearInterval(drip);
        resolve(data);
      });
      setTimeout(() => socket.destroy(new Error('still open after 10 s')), 10_000).unref();
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await new Client(app.url).request('GET', `/api/v1/users/${name}`)).status).toBe(404);
  });
});

const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('crafted input gets 400, never 500, and stores nothing', () => {
  const app = useApp();

  it('refuses cursors out of range, oddly formatted or holding NUL', async () => {
    const { c, name } = await app.loggedIn();
    const id = 'AAAAAAAAAAAAAAAA';
    const cursors = [
      cursorOf(['99999', 'x']),
      cursorOf(['+010000-01-01T00:00:00.000Z', id]),
      cursorOf(['10000-01-01T00:00:00.000Z', id]),
      cursorOf(['-000001-01-01T00:00:00.000Z', id]),
      cursorOf(['0000-01-01T00:00:00.000Z', id]),
      cursorOf(['2026-01-01', id]),
      cursorOf(['2026-02-30T00:00:00.000Z', id]),
      cursorOf(['2026-01-01T00:00:00.000Z', `AAAAAAA\u0000AAAAAAAA`]),
      cursorOf(['2026-01-01T00:00:00.000Z\u0000', id]),
      cursorOf(['2026-01-01T00:00:00.000Z', id, 'extra']),
      'not base64 at all!',
    ];
    for (const cursor of cursors) {
      const q = `?cursor=${encodeURIComponent(cursor)}`;
      for (const path of ['/api/v1/feed', `/api/v1/users/${name}/photos`]) {
        const res = await c.request('GET', path + q);
        expect(res.status, `${path} ${cursor}`).toBe(400);
        expect(res.body.error.code).toBe('INVALID_CURSOR');
      }
      for (const path of ['/', `/u/${name}`]) {
        expect((await c.request('GET', path + q, { headers: { accept: 'text/html' } })).status).toBe(400);
      }
    }
    // A real cursor still pages.
    const valid = cursorOf(['2026-01-01T00:00:00.000Z', id]);
    expect((await c.request('GET', `/api/v1/feed?cursor=${valid}`)).status).toBe(200);
  });

  it('refuses a caption with a NUL byte', async () => {
    const { c, name } = await app.loggedIn();
    for (const caption of ['nul \u0000 inside', 'bell \u0007']) {
      const res = await c.upload(await pngImage(), caption);
      expect(res.status).toBe(400);
    }
    expect((await c.upload(await pngImage(), 'two\nlines\tand a tab')).status).toBe(202);
    expect((await c.request('GET', `/api/v1/users/${name}/photos`)).body.items).toHaveLength(1);
  });

  it('refuses a malformed Host header, and a host the site does not answer to', async () => {
    const port = Number(new URL(app.url).port);
    for (const host of ['x:99999', '[::1', 'a b', 'exa_mple.com:80:80', '']) {
      expect(
        await rawStatus(port, `GET /api/v1/feed HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
        host,
      ).toBe(400);
    }
    expect(await rawStatus(port, `GET /healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n`)).toBe(400);
    expect(await rawStatus(port, `GET /healthz HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\n\r\n`)).toBe(
      200,
    );
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
  });

  it('refuses malformed multipart bodies, a cut-off upload included, and keeps serving', async () => {
    const { c, name } = await app.loggedIn();
    const png = await pngImage();
    const boundary = 'XyZboundary42';
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n`;
    const whole = Buffer.concat([Buffer.from(head), png, Buffer.from(`\r\n--${boundary}--\r\n`)]);
    const bodies: [string, Buffer][] = [
      ['cut off before the closing boundary', whole.subarray(0, whole.length - 30)],
      ['cut off inside the part headers', Buffer.from(head.slice(0, 40))],
      ['no part at all', Buffer.from('garbage without any boundary')],
      ['headers with no blank line', Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"\r\n`)],
      [
        'a part without a name',
        Buffer.from(`--${boundary}\r\nContent-Type: image/png\r\n\r\nxx\r\n--${boundary}--\r\n`),
      ],
      ['empty', Buffer.alloc(0)],
    ];
    for (const [what, body] of bodies) {
      const res = await c.request('POST', '/api/v1/photos', {
        body: new Uint8Array(body),
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      });
      expect(res.status, what).toBe(400);
    }
    const noBoundary = await c.request('POST', '/api/v1/photos', {
      body: new Uint8Array(whole),
      headers: { 'content-type': 'multipart/form-data' },
    });
    expect(noBoundary.status).toBe(400);
    expect((await c.request('GET', `/api/v1/users/${name}/photos`)).body.items).toHaveLength(0);
    expect((await c.upload(png)).status).toBe(202);
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
  });
});

describe('a photo that is not ready is its owner’s alone', () => {
  // A broken image fails its first decode and waits a minute for its retry: it stays `processing`.
  const app = useApp({ jobAttempts: 2, jobBackoffMs: 60_000, uploadMaxQueued: 2, uploadRateLimit: 4 });
  const broken = async () => (await pngImage(300, 200)).subarray(0, 200);

  it('answers 404 to everyone but the owner for a processing photo', async () => {
    const owner = await app.loggedIn();
    const id = (await owner.c.upload(await broken())).body.photo.id as string;
    const mine = await owner.c.request('GET', `/api/v1/photos/${id}`);
    expect(mine.status).toBe(200);
    expect(mine.body.photo.status).toBe('processing');
    const other = await app.loggedIn();
    for (const c of [other.c, new Client(app.url)]) {
      const res = await c.request('GET', `/api/v1/photos/${id}`);
      expect(res.status).toBe(404);
      expect(JSON.stringify(res.body)).not.toContain(owner.name);
      expect((await c.request('GET', `/p/${id}`, { headers: { accept: 'text/html' } })).status).toBe(404);
    }
  });

  it('caps each user’s photos in processing, and each user’s uploads a minute', async () => {
    const { c } = await app.loggedIn();
    expect((await c.upload(await broken())).status).toBe(202);
    expect((await c.upload(await broken())).status).toBe(202);
    const third = await c.upload(await broken());
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBeTruthy();
    // Someone else is not held back.
    const other = await app.loggedIn();
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await other.c.upload(await pngImage());
      statuses.push(res.status);
      if (res.status === 202) await other.c.waitForPhoto(res.body.photo.id);
    }
    expect(statuses.slice(0, 4).every((s) => s === 202)).toBe(true);
    expect(statuses[4]).toBe(429);
  });
});

/** An AVIF of 7000 × 7000 with texture: small on the wire, seconds of CPU to decode. */
async function costlyAvif(): Promise<Buffer> {
  const [w, h] = [7000, 7000];
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      raw[i] = (x * 7) ^ (y * 3);
      raw[i + 1] = (x + y) & 255;
      raw[i + 2] = (x * y) >> 4;
    }
  }
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } })
    .avif({ effort: 0, quality: 30 })
    .toBuffer();
}

describe('one user cannot stall everyone’s photos', () => {
  const app = useApp({ imageDecodeTimeoutSeconds: 1, jobAttempts: 3, jobBackoffMs: 50, uploadMaxQueued: 5 });

  it('fails a photo that costs more than the decode limit at once, and another user’s photo takes its turn', async () => {
    const bomb = await costlyAvif();
    const attacker = await app.loggedIn();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await attacker.c.upload(bomb, `costly ${i}`, 'bomb.avif');
      expect(res.status).toBe(202);
      ids.push(res.body.photo.id);
    }
    const victim = await app.loggedIn();
    const mine = (await victim.c.upload(await pngImage())).body.photo.id as string;
    const ready = await victim.c.waitForPhoto(mine, 30_000);
    expect(ready.body.photo.status).toBe('ready');
    // Fair turns: the other user's photo did not wait for all three costly ones.
    const statuses = await Promise.all(
      ids.map(async (id) => (await attacker.c.request('GET', `/api/v1/photos/${id}`)).body.photo.status),
    );
    expect(statuses).toContain('processing');
    // Each costly photo fails cleanly (no retries: it would cost as much again), and only its owner sees it.
    for (const id of ids) {
      const done = await attacker.c.waitForPhoto(id, 30_000);
      expect(done.body.photo.status).toBe('failed');
      expect((await victim.c.request('GET', `/api/v1/photos/${id}`)).status).toBe(404);
    }
  }, 90_000);
});
