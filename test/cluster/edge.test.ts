import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, killHard, sleep, waitUntil } from '../../src/cluster/process.ts';
import { type ClusterState, stateOf } from '../../src/cluster/run/index.ts';
import { status } from '../../src/cluster/run/status.ts';
import { allProcesses, type ProcessSpec } from '../../src/cluster/topology/index.ts';
import { Client, pngImage } from '../support/app.ts';
import { startTopology } from '../support/cluster.ts';

/**
 * Step 1.5 on real servers: `cdn` (stateless + a Varnish edge in front of the
 * balancer), its cache, purges, grace and the fallback to the origin, each
 * fault made with SIGKILL. One topology for the file.
 */
type Topo = Awaited<ReturnType<typeof startTopology>>;
let topo: Topo;
const latest = (): ClusterState => stateOf(topo.runRoot, topo.state.topology.name) as ClusterState;
const spec = <K extends ProcessSpec['kind']>(kind: K) =>
  allProcesses(topo.state.topology).filter((p): p is Extract<ProcessSpec, { kind: K }> => p.kind === kind);
const url = (a: { host: string; port: number }) => `http://${a.host}:${a.port}`;
const edgeUrl = () => url(spec('varnish')[0]?.listen as never);
const originUrl = () => url(spec('loadBalancer')[0]?.listen as never);
const pidOf = (name: string) => latest().processes.find((p) => p.name === name)?.pid as number;

/** A ready photo uploaded through the edge, with its variant URLs. */
async function readyPhoto(c: Client) {
  const id = (await c.upload(await pngImage(), 'through the edge', 'a.png')).body.photo.id as string;
  const photo = (await c.waitForPhoto(id, 20_000)).body.photo as { variants: { thumb: string; display: string } };
  return { id, thumb: photo.variants.thumb, display: photo.variants.display };
}

const get = async (u: string, init?: RequestInit) => {
  const res = await fetch(u, { ...init, signal: AbortSignal.timeout(5000) });
  await res.arrayBuffer();
  return res;
};

/** An image load as the page does it: from its URL, and from the origin when that fails. */
async function loadImage(u: string): Promise<'edge' | 'origin' | 'failed'> {
  try {
    if ((await get(u)).status === 200) return new URL(u).origin === originUrl() ? 'origin' : 'edge';
  } catch {
    // fall back
  }
  const path = new URL(u).pathname;
  try {
    return (await get(`${originUrl()}${path}`)).status === 200 ? 'origin' : 'failed';
  } catch {
    return 'failed';
  }
}

/** The web servers' log lines that match `re` (the last 20 of each). */
function webLogLines(re: RegExp): string[] {
  return latest()
    .processes.filter((p) => p.kind === 'web')
    .flatMap((p) => {
      const file = path.join(topo.state.runDir, 'logs', `${p.name}.log`);
      const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
      return lines
        .filter((l) => re.test(l))
        .slice(-20)
        .map((l) => `${p.name}: ${l.slice(0, 300)}`);
    });
}

let c: Client;
beforeAll(async () => {
  topo = await startTopology('cdn');
  c = new Client(topo.url);
  await c.logIn(await c.signUp());
}, 240_000);

afterAll(async () => {
  const left = await topo?.stop();
  expect(left).toEqual([]);
}, 120_000);

describe('the cdn preset (step 1.5)', () => {
  it('puts the edge in front: status lists it, and the site is reached through it', async () => {
    expect(topo.url).toBe(edgeUrl());
    const rows = await status(latest());
    const edge = rows.find((r) => r.kind.includes('varnish') && r.chapterTier === 'edge');
    expect(edge?.health).toBe('healthy');
    expect(rows.find((r) => r.kind === 'varnishExporter')?.health).toBe('healthy');
  });

  it('serves a photo’s variants from the edge (a second fetch is a hit), never a page or the API', async () => {
    const { id, thumb, display } = await readyPhoto(c);
    // A web server started before the edge (they start first) saw it down and points image URLs at the
    // origin until its next probe (every 1 s) answers: every read through the balancer names the edge
    // within a few probes of that.
    const thumbs = new Set<string>();
    const pointsAtEdge = async () => {
      const views = await Promise.all(Array.from({ length: 4 }, () => c.request('GET', `/api/v1/photos/${id}`)));
      const origins = views.flatMap((v) =>
        [v.body.photo.variants.thumb, v.body.photo.variants.display].map((u: string) => new URL(u).origin),
      );
      for (const o of origins) thumbs.add(o);
      return origins.every((o) => o === edgeUrl());
    };
    if (!(await pointsAtEdge())) {
      const ok = await waitUntil(pointsAtEdge, 5000, 'image URLs pointing at the edge').then(
        () => true,
        () => false,
      );
      if (!ok) {
        const lines = webLogLines(/edge/);
        throw new Error(`image URLs still at ${[...thumbs].join(', ')}; the web servers said:\n${lines.join('\n')}`);
      }
    }
    for (const u of [thumb, display].map((v) => `${edgeUrl()}${new URL(v).pathname}`)) {
      const first = await get(u);
      expect(first.status).toBe(200);
      expect(first.headers.get('cache-control')).toContain('immutable');
      // A cookie and a bearer token never reach a cached object, and nothing sets one.
      const second = await get(u, { headers: { cookie: 'sid=someone', authorization: 'Bearer x' } });
      expect(second.status).toBe(200);
      expect(second.headers.get('x-cache')).toBe('HIT');
      expect(second.headers.get('set-cookie')).toBeNull();
    }
    const api = await get(`${edgeUrl()}/api/v1/users/suggested`, {
      headers: c.token ? { authorization: `Bearer ${c.token}` } : {},
    });
    expect(api.headers.get('x-cache')).toBe('MISS');
    const again = await get(`${edgeUrl()}/api/v1/users/suggested`);
    expect(again.headers.get('x-cache')).toBe('MISS');
    // PURGE only from the topology with its token.
    expect((await get(`${edgeUrl()}/`, { method: 'PURGE', headers: { 'xkey-purge': 'photo-x' } })).status).toBe(403);
  });

  it('a deleted photo is gone from the edge within 2 s, even while fills race the delete', async () => {
    const { id, thumb, display } = await readyPhoto(c);
    expect((await get(thumb)).status).toBe(200);
    // Fills keep arriving while the delete runs.
    let filling = true;
    const fills = (async () => {
      while (filling) await Promise.all([get(thumb).catch(() => null), get(display).catch(() => null)]);
    })();
    await sleep(200);
    const deleted = await c.request('DELETE', `/api/v1/photos/${id}`);
    expect(deleted.status).toBe(204);
    const at = Date.now();
    await sleep(300);
    filling = false;
    await fills;
    await waitUntil(
      async () => (await get(thumb)).status === 404 && (await get(display)).status === 404,
      2000,
      'the edge to answer 404 for the deleted photo',
    );
    expect(Date.now() - at).toBeLessThan(2000);
    // And it stays gone: no later fill brings it back (the second purge, 1 s after the delete, has run).
    await sleep(1500);
    for (let i = 0; i < 10; i++) {
      for (const u of [thumb, display]) expect((await get(u)).status).toBe(404);
    }
  });

  it('the origin tier down: the edge serves what it holds, and a page says the site is degraded', async () => {
    const { thumb } = await readyPhoto(c);
    expect((await get(thumb)).status).toBe(200);
    const lb = 'load-balancer';
    killHard(pidOf(lb));
    try {
      await sleep(2500);
      const held = await get(thumb);
      expect(held.status).toBe(200);
      expect(held.headers.get('x-cache')).toBe('HIT');
      const page = await fetch(`${edgeUrl()}/login`, { headers: { accept: 'text/html' } });
      expect(page.status).toBe(503);
      expect(await page.text()).toMatch(/The site is degraded/);
    } finally {
      // The supervisor starts the balancer again (crash-loop back-off: 10 s).
      await waitUntil(async () => (await get(`${edgeUrl()}/healthz`).catch(() => null))?.status === 200, 60_000);
    }
  }, 90_000);

  it('Varnish killed under image load: every image still loads (from the origin), then URLs point to the origin until it is back', async () => {
    const photos = [await readyPhoto(c), await readyPhoto(c)];
    const urls = photos.flatMap((p) => [p.thumb, p.display]);
    const results: string[] = [];
    const end = Date.now() + 8000;
    let killedAt = 0;
    const load = (async () => {
      for (let i = 0; Date.now() < end && i < 5000; i++) {
        results.push(await loadImage(urls[i % urls.length] as string));
        await sleep(5);
      }
    })();
    await sleep(1500);
    const edgePid = pidOf('edge');
    killHard(edgePid);
    killedAt = Date.now();
    await load;
    expect(killedAt).toBeGreaterThan(0);
    expect(isAlive(edgePid)).toBe(false);
    expect(results.filter((r) => r === 'failed')).toEqual([]);
    expect(results).toContain('edge');
    expect(results).toContain('origin');
    // The web servers noticed (two failed probes, 1 s apart): the API's image URLs are the origin's now
    // (asked of the origin: the site's own URL is the dead edge).
    const o = new Client(originUrl());
    o.token = c.token;
    o.cookies = c.cookies;
    const thumbOrigin = async () => {
      const body = (await o.request('GET', `/api/v1/photos/${photos[0]?.id}`)).body as {
        photo: { variants: { thumb: string } };
      };
      return new URL(body.photo.variants.thumb).origin;
    };
    await waitUntil(async () => (await thumbOrigin()) === originUrl(), 10_000, 'image URLs on the origin');
    // The supervisor starts the edge again; then URLs point back to it.
    await waitUntil(async () => (await get(`${edgeUrl()}/.edge/health`).catch(() => null))?.status === 200, 60_000);
    await waitUntil(async () => (await thumbOrigin()) === edgeUrl(), 10_000, 'image URLs on the edge again');
  }, 120_000);

  it('in Chromium: with the edge killed, every image of the feed page still loads', async () => {
    const { id } = await readyPhoto(c);
    await readyPhoto(c);
    // Every web server sees the edge healthy (a probe a second): image URLs point to it, whichever answers.
    const o = new Client(originUrl());
    o.token = c.token;
    await waitUntil(
      async () => {
        for (let i = 0; i < 4; i++) {
          const body = (await o.request('GET', `/api/v1/photos/${id}`)).body as {
            photo: { variants: { thumb: string } };
          };
          if (new URL(body.photo.variants.thumb).origin !== edgeUrl()) return false;
        }
        return true;
      },
      15_000,
      'image URLs on the edge from every web server',
    );
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    try {
      // Tall enough that no thumbnail is below the fold (they load lazily).
      const context = await browser.newContext({ viewport: { width: 1280, height: 4000 } });
      // The session cookie of our client, for the origin's address (the page is served by the balancer).
      const sid = c.cookies.get('sid');
      if (sid) await context.addCookies([{ name: 'sid', value: sid, url: originUrl() }]);
      else throw new Error('the client has no session cookie');
      const page = await context.newPage();
      const allLoaded = () =>
        page.waitForFunction(
          () => Array.from(document.querySelectorAll('img')).every((i) => i.complete && i.naturalWidth > 0),
          null,
          { timeout: 10_000 },
        );
      const images = async () =>
        page
          .locator('img')
          .evaluateAll((els) =>
            els.map((e) => ({ src: (e as HTMLImageElement).currentSrc, ok: (e as HTMLImageElement).naturalWidth > 0 })),
          );
      await page.goto(`${originUrl()}/`, { waitUntil: 'load' });
      await allLoaded();
      const before = await images();
      expect(before.length).toBeGreaterThanOrEqual(2);
      expect(before, JSON.stringify(before)).toEqual(before.map((i) => ({ ...i, ok: true })));
      expect(
        before.every((i) => i.src.startsWith(edgeUrl())),
        JSON.stringify(before),
      ).toBe(true);
      // Kill the edge, and load the page again at once: the page still names the edge (the servers have not
      // noticed yet), and each image falls back to the origin in the browser.
      killHard(pidOf('edge'));
      // A browser that has not cached them yet (this one would load them from its HTTP cache: immutable).
      const fresh = await browser.newContext({ viewport: { width: 1280, height: 4000 } });
      await fresh.addCookies([{ name: 'sid', value: sid, url: originUrl() }]);
      const second = await fresh.newPage();
      await second.goto(`${originUrl()}/`, { waitUntil: 'load' });
      await second.waitForFunction(
        () => Array.from(document.querySelectorAll('img')).every((i) => i.complete && i.naturalWidth > 0),
        null,
        { timeout: 10_000 },
      );
      const after = await second
        .locator('img')
        .evaluateAll((els) =>
          els.map((e) => ({ src: (e as HTMLImageElement).currentSrc, ok: (e as HTMLImageElement).naturalWidth > 0 })),
        );
      expect(after.length).toBe(before.length);
      expect(after.every((i) => i.ok)).toBe(true);
      expect(after.some((i) => i.src.startsWith(originUrl()))).toBe(true);
    } finally {
      await browser.close();
      await waitUntil(async () => (await get(`${edgeUrl()}/.edge/health`).catch(() => null))?.status === 200, 60_000);
    }
  }, 120_000);
});
