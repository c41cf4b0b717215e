import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll } from 'vitest';
import { type Config, loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/platform/observability/logger.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { tempDir } from './temp.ts';

export interface TestApp {
  url: string;
  runtime: Runtime;
  dataDir: string;
  config: Config;
  /** Stops the server; the data dir stays until `remove`. */
  stop(): Promise<void>;
  remove(): Promise<void>;
}

/** A real single-server runtime on a free port and a fresh data dir. */
export async function startApp(
  overrides: Partial<Record<keyof Config, unknown>> = {},
  dataDir?: string,
): Promise<TestApp> {
  const tmp = dataDir ? { dir: dataDir, remove: async () => {} } : await tempDir();
  const config = loadConfig(
    {},
    {
      port: 0,
      metricsPort: 0,
      dataDir: tmp.dir,
      logLevel: 'silent',
      loginRateLimit: 1000,
      signupRateLimit: 1000,
      uploadRateLimit: 1000,
      uploadMaxQueued: 1000,
      jobBackoffMs: 50,
      ...overrides,
    },
  );
  const runtime = await createRuntime(config, { logger: createLogger('silent') });
  const url = (await runtime.listen()).replace('[::1]', '127.0.0.1');
  let stopped = false;
  return {
    url,
    runtime,
    dataDir: tmp.dir,
    config,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await runtime.close();
    },
    remove: tmp.remove,
  };
}

export const uniqueName = (prefix = 'u') => `${prefix}_${randomBytes(5).toString('hex')}`;
export const password = 'correct horse battery';

/** A small API client that keeps its own cookies. */
export class Client {
  cookies = new Map<string, string>();
  token: string | undefined;
  base: string;
  readonly #agent: Agent | undefined;
  /** `localAddress`: connect from this loopback address, as another client machine would (127.0.0.2, …). */
  constructor(base: string, opts: { localAddress?: string } = {}) {
    this.base = base;
    this.#agent = opts.localAddress ? new Agent({ localAddress: opts.localAddress }) : undefined;
  }

  async request(
    method: string,
    path: string,
    init: { json?: unknown; body?: BodyInit; headers?: Record<string, string>; bearer?: boolean } = {},
  ) {
    const headers: Record<string, string> = { ...init.headers };
    if (init.json !== undefined) headers['content-type'] = 'application/json';
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (init.bearer && this.token) {
      headers.authorization = `Bearer ${this.token}`;
      delete headers.cookie;
    }
    const options = {
      method,
      headers,
      body: init.json !== undefined ? JSON.stringify(init.json) : init.body,
      redirect: 'manual' as const,
    };
    const res = this.#agent
      ? ((await undiciFetch(this.base + path, { ...options, dispatcher: this.#agent } as never)) as unknown as Response)
      : await fetch(this.base + path, options);
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const [k, ...v] = (pair ?? '').split('=');
      if (!k) continue;
      const value = v.join('=');
      if (value === '' || /max-age=0|expires=thu, 01 jan 1970/i.test(c)) this.cookies.delete(k);
      else this.cookies.set(k, value);
    }
    const text = await res.text();
    let body: any;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    return { status: res.status, body, headers: res.headers };
  }

  async signUp(username = uniqueName()) {
    const res = await this.request('POST', '/api/v1/users', { json: { username, password } });
    if (res.status !== 201) throw new Error(`signup ${res.status} ${JSON.stringify(res.body)}`);
    return username;
  }

  async logIn(username: string) {
    const res = await this.request('POST', '/api/v1/sessions', { json: { username, password } });
    if (res.status !== 201) throw new Error(`login ${res.status}`);
    this.token = res.body.token;
    return res;
  }

  async upload(file: Buffer, caption = 'a caption', filename = 'photo.jpg') {
    const form = new FormData();
    form.append('caption', caption);
    form.append('file', new Blob([new Uint8Array(file)]), filename);
    return this.request('POST', '/api/v1/photos', { body: form });
  }

  async waitForPhoto(id: string, timeoutMs = 10_000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const res = await this.request('GET', `/api/v1/photos/${id}`);
      // Someone else's photo is a 404 until it is ready.
      const waiting = res.status === 404 || res.body?.photo?.status === 'processing';
      if (!waiting || Date.now() > end) return res;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** A JPEG whose EXIF says "rotate 90°" and which carries GPS and camera tags. */
export async function jpegWithExif(width = 1600, height = 1200): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: 30, g: 120, b: 200 } } })
    .jpeg()
    .withMetadata({ orientation: 6 })
    .withExif({
      IFD0: { Make: 'TestCam', Model: 'T1' },
      IFD3: {
        GPSLatitudeRef: 'N',
        GPSLatitude: '51/1 30/1 0/1',
        GPSLongitudeRef: 'W',
        GPSLongitude: '0/1 7/1 0/1',
      },
    })
    .toBuffer();
}

export async function pngImage(width = 64, height = 48): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 4, background: { r: 0, g: 200, b: 0, alpha: 1 } } })
    .png()
    .toBuffer();
}

/**
 * One app for the test file: started before its tests and removed after.
 * `loggedIn()` makes a fresh account with a logged-in client.
 */
export function useApp(overrides: Partial<Record<keyof Config, unknown>> = {}) {
  let app: TestApp | undefined;
  beforeAll(async () => {
    app = await startApp(overrides);
  });
  afterAll(async () => {
    await app?.stop();
    await app?.remove();
  });
  const current = () => {
    if (!app) throw new Error('the app is not started yet');
    return app;
  };
  return {
    get url() {
      return current().url;
    },
    /** The private metrics listener. */
    get metricsUrl() {
      return current().runtime.metricsUrl();
    },
    async loggedIn() {
      const c = new Client(current().url);
      const name = await c.signUp();
      await c.logIn(name);
      return { c, name };
    },
  };
}
