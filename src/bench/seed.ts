import { Pool } from 'undici';

/** A small deterministic PRNG, so a seed number always makes the same data. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SeedOptions {
  target: string;
  users: number;
  photos: number;
  /** How many of the other users the viewer (user 0) follows. */
  follows: number;
  seed: number;
  log?: (line: string) => void;
  /** The longest a seed waits out limits in all (429 and 503 with Retry-After) before it gives up. */
  maxWaitMs?: number;
}

export interface SeedManifest {
  target: string;
  seed: number;
  password: string;
  viewer: { username: string; token: string };
  /** Followed by about nine users in ten. */
  celebrity: string;
  users: string[];
  /** A bearer token per user, same order: the virtual users' sessions. */
  tokens: string[];
  photoIds: string[];
  follows: number;
}

/** Draws ranks 0..n-1 with probability ∝ 1/(rank+1)^s: a few are very popular, most are not. */
export function zipf(n: number, s: number, random: () => number): () => number {
  const cumulative: number[] = [];
  let sum = 0;
  for (let r = 0; r < n; r++) {
    sum += 1 / (r + 1) ** s;
    cumulative.push(sum);
  }
  return () => {
    const x = random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cumulative[mid] as number) < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/**
 * The follow graph: the viewer (user 0) follows users 1..`viewerFollows`;
 * every other user follows the celebrity (user 1) with probability 0.9 and a
 * power-law number of others (Pareto, α 1.2, at most 50) picked by Zipf
 * popularity. Pairs are unique and nobody follows themself.
 */
export function followGraph(users: number, viewerFollows: number, random: () => number): [number, number][] {
  const pairs = new Set<string>();
  const out: [number, number][] = [];
  const add = (a: number, b: number) => {
    if (a === b || b >= users || pairs.has(`${a}>${b}`)) return;
    pairs.add(`${a}>${b}`);
    out.push([a, b]);
  };
  for (let b = 1; b <= viewerFollows; b++) add(0, b);
  const popular = zipf(users, 1.1, random);
  for (let a = 2; a < users; a++) {
    if (random() < 0.9) add(a, 1);
    const k = Math.min(50, Math.floor(1 / (1 - random()) ** (1 / 1.2)));
    for (let j = 0; j < k; j++) add(a, popular());
  }
  return out;
}

const password = 'bench-password-123';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Fills a running scaleout through its public API: users, a viewer who
 * follows `follows` of them, and `photos` small photos spread over the
 * followed users. Re-running with the same seed reuses the same accounts.
 */
export async function seed(opts: SeedOptions): Promise<SeedManifest> {
  const log = opts.log ?? (() => {});
  const random = mulberry32(opts.seed);
  const pool = new Pool(opts.target, { connections: 4 });
  // A site's limits are the site's: a 429 or 503 is waited out for its Retry-After (or until `ready`
  // says the cause went away, e.g. an owner's photos finished processing), never raised.
  let waitedMs = 0;
  const maxWaitMs = opts.maxWaitMs ?? 30 * 60_000;
  const waitOut = async (what: string, retryAfter: string | undefined, ready?: () => Promise<boolean>) => {
    const seconds = Number(retryAfter);
    const ms = Math.min(120_000, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 1000);
    if (waitedMs + ms > maxWaitMs)
      throw new Error(`${what}: still limited after waiting ${Math.round(waitedMs / 1000)} s`);
    const until = Date.now() + ms;
    while (Date.now() < until) {
      await sleep(Math.min(250, until - Date.now()));
      if (ready && (await ready())) break;
    }
    waitedMs += ms - Math.max(0, until - Date.now());
  };
  const limited = new Map<string, number>();
  const noteLimit = (what: string) => {
    const n = (limited.get(what) ?? 0) + 1;
    limited.set(what, n);
    if (n === 1 || n % 20 === 0) log(`${what}: limited by the site (429), waiting as Retry-After says`);
  };
  const call = async (
    method: 'GET' | 'POST' | 'PUT',
    path: string,
    body?: string | FormData,
    token?: string,
    ready?: () => Promise<boolean>,
  ): Promise<{ status: number; json: ReturnType<typeof JSON.parse> }> => {
    for (;;) {
      const res = await callOnce(method, path, body, token);
      if (res.status !== 429 && res.status !== 503) return res;
      const what = `${method} ${path.replace(/\/[^/]+\/follow$/, '/…/follow')}`;
      noteLimit(what);
      await waitOut(what, res.retryAfter, ready);
    }
  };
  const callOnce = async (method: 'GET' | 'POST' | 'PUT', path: string, body?: string | FormData, token?: string) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    let payload: string | Buffer | undefined;
    if (typeof body === 'string') {
      headers['content-type'] = 'application/json';
      payload = body;
    } else if (body) {
      const encoded = new Response(body);
      headers['content-type'] = encoded.headers.get('content-type') ?? '';
      payload = Buffer.from(await encoded.arrayBuffer());
    }
    const res = await pool.request({ method, path, headers, body: payload });
    const text = await res.body.text();
    const retryAfter = res.headers['retry-after'];
    return {
      status: res.statusCode,
      json: text ? JSON.parse(text) : undefined,
      retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
    };
  };
  const login = async (username: string) => {
    const res = await call('POST', '/api/v1/sessions', JSON.stringify({ username, password }));
    if (res.status !== 201) throw new Error(`login ${username}: ${res.status} ${JSON.stringify(res.json)}`);
    return res.json.token as string;
  };

  const users = Array.from({ length: opts.users }, (_, i) => `s${opts.seed}_user_${i}`);
  const tokens: string[] = [];
  for (const username of users) {
    const res = await call('POST', '/api/v1/users', JSON.stringify({ username, password }));
    if (res.status !== 201 && res.status !== 409) throw new Error(`signup ${username}: ${res.status}`);
    tokens.push(await login(username));
  }
  log(`users: ${users.length}`);
  const viewer = { username: users[0] as string, token: tokens[0] as string };
  const followed = users.slice(1, 1 + opts.follows);
  const graph = followGraph(users.length, opts.follows, random);
  for (let i = 0; i < graph.length; i += 8) {
    await Promise.all(
      graph.slice(i, i + 8).map(async ([a, b]) => {
        const res = await call('PUT', `/api/v1/users/${users[b]}/follow`, undefined, tokens[a]);
        if (res.status !== 204) throw new Error(`follow ${users[a]} → ${users[b]}: ${res.status}`);
      }),
    );
  }
  log(`follows: ${graph.length} (the viewer follows ${followed.length})`);

  const owners = followed.length > 0 ? followed : users;
  const photoIds: string[] = [];
  const uploadOne = async (i: number) => {
    const owner = i % owners.length;
    const color = { r: Math.floor(random() * 256), g: Math.floor(random() * 256), b: Math.floor(random() * 256) };
    // Loaded here, not at the top: every `scaleout` command (a web server too) imports this module.
    const { default: sharp } = await import('sharp');
    const png = await sharp({ create: { width: 96, height: 72, channels: 3, background: color } })
      .png()
      .toBuffer();
    const form = new FormData();
    form.append('caption', `seed ${opts.seed} photo ${i}`);
    form.append('file', new Blob([new Uint8Array(png)]), 'p.png');
    const token = tokens[users.indexOf(owners[owner] as string)];
    const mine = processing.get(owner) ?? [];
    processing.set(owner, mine);
    // Limited while this owner has photos processing: go on as soon as one of them is ready.
    const oneReady = async () => {
      for (const id of mine) {
        const res = await callOnce('GET', `/api/v1/photos/${id}`);
        if (res.json?.photo?.status !== 'processing') {
          mine.splice(mine.indexOf(id), 1);
          return true;
        }
      }
      return false;
    };
    const res = await call('POST', '/api/v1/photos', form, token, oneReady);
    if (res.status !== 202) throw new Error(`upload ${i}: ${res.status} ${JSON.stringify(res.json)}`);
    photoIds.push(res.json.photo.id);
    mine.push(res.json.photo.id);
  };
  const processing = new Map<number, string[]>();
  for (let i = 0; i < opts.photos; i += 4) {
    await Promise.all([i, i + 1, i + 2, i + 3].filter((n) => n < opts.photos).map(uploadOne));
    if ((i + 4) % 100 === 0) log(`photos: ${Math.min(i + 4, opts.photos)}/${opts.photos}`);
  }
  // Wait until every photo is ready, so reads measure the steady state.
  for (const id of photoIds) {
    for (let tries = 0; ; tries++) {
      const res = await call('GET', `/api/v1/photos/${id}`);
      if (res.json?.photo?.status === 'ready') break;
      if (tries > 600) throw new Error(`photo ${id} never became ready`);
      await sleep(50);
    }
  }
  log(`photos ready: ${photoIds.length}`);
  await pool.close();
  return {
    target: opts.target,
    seed: opts.seed,
    password,
    viewer,
    celebrity: users[1] ?? (users[0] as string),
    users,
    tokens,
    photoIds,
    follows: graph.length,
  };
}
