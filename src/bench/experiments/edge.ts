import { Pool } from 'undici';
import { z } from 'zod';
import { processesOf } from '../../cluster/topology/index.ts';
import { defineExperiment, flag } from '../experiment.ts';
import { LatencyHistogram } from '../load.ts';
import { mulberry32, seed, zipf } from '../seed.ts';
import { startPreset } from '../targets.ts';

interface ImageRow {
  mode: 'origin' | 'edge';
  loads: number;
  perSecond: number;
  hitRatio: number | null;
  originPer1000: number;
  p50: number;
  p99: number;
  failed: number;
}

interface PageRow {
  mode: 'origin' | 'edge';
  pageViews: number;
  pageViewsPerSecond: number;
  imagesPerView: number;
  webRequestsPerView: number;
  p50: number;
  p99: number;
}

const hostOf = (u: string) => new URL(u).origin;

/**
 * Step 1.5 measured on `cdn` (stateless with a Varnish edge in front): the
 * same image loads with their URLs on the origin (the balancer, as on
 * `stateless`) and on the edge, in one run, on one topology. Images are
 * picked Zipf-skewed (s = 1.1: a long tail). Then page views: the HTML feed
 * page and every thumbnail on it, closed loop, images from the origin and
 * from the edge. Reports the edge's hit ratio, origin requests per 1,000
 * image loads, image p50/p99, and the edge's memory.
 */
export const edge = defineExperiment({
  name: 'edge',
  title: 'CDN edge: image loads and feed page views with their thumbnails, from the origin and from the edge',
  options: z.object({
    users: flag.int(40, 'users seeded'),
    photos: flag.int(120, 'photos seeded'),
    seconds: flag.int(20, 'seconds of each closed-loop run'),
    connections: flag.int(16, 'concurrent image loads or page views'),
    rates: flag.numbers('25,50,100,150,200,300,400,500', 'page views per second of the open-loop sweep, in order'),
    stepSeconds: flag.int(10, 'seconds of each step of the sweep'),
    p99: flag.number(
      250,
      'the p99 (ms, from each page view’s scheduled start to its last thumbnail) a sustained rate keeps',
    ),
  }),
  async run(o, ctx) {
    ctx.log('starting cdn');
    const target = await startPreset('cdn', { name: 'bench-edge', supervise: false });
    try {
      const manifest = await seed({
        target: target.origin,
        users: o.users,
        photos: o.photos,
        follows: Math.min(10, o.users - 1),
        seed: 5,
      });
      const [lb] = processesOf(target.state.topology, 'loadBalancer');
      const [varnish] = processesOf(target.state.topology, 'varnish');
      const [exporter] = processesOf(target.state.topology, 'varnishExporter');
      if (!lb || !varnish || !exporter) throw new Error('cdn has a balancer, an edge and its exporter');
      const origin = `http://${lb.listen.host}:${lb.listen.port}`;
      const edgeBase = `http://${varnish.listen.host}:${varnish.listen.port}`;
      const pools = new Map([
        [origin, new Pool(origin, { connections: o.connections })],
        [edgeBase, new Pool(edgeBase, { connections: o.connections })],
      ]);
      const fetchIn = async (base: string, path: string, headers: Record<string, string> = {}) => {
        const pool = pools.get(base) as Pool;
        const res = await pool.request({ method: 'GET', path, headers });
        const body = await res.body.text();
        return { status: res.statusCode, cache: String(res.headers['x-cache'] ?? ''), body };
      };
      const metric = async (name: string) => {
        const text = await (await fetch(`http://${exporter.listen.host}:${exporter.listen.port}/metrics`)).text();
        return text
          .split('\n')
          .filter((l) => l.startsWith(name) && !l.startsWith('#'))
          .reduce((a, l) => a + Number(l.split(' ').at(-1)), 0);
      };

      /** `connections` loops, each calling `step` until `seconds` are over. */
      const closedLoop = async (step: () => Promise<void>) => {
        const end = Date.now() + o.seconds * 1000;
        await Promise.all(
          Array.from({ length: o.connections }, async () => {
            while (Date.now() < end) await step();
          }),
        );
      };
      /**
       * One page view: the HTML home page of `user` through the origin (as a browser on the balancer's
       * address), then every thumbnail on it, from the edge or from the origin. Throws on a non-200.
       */
      const pageView = async (mode: 'origin' | 'edge', user: number) => {
        const page = await fetchIn(origin, '/', {
          authorization: `Bearer ${manifest.tokens[user]}`,
          accept: 'text/html',
        });
        if (page.status !== 200) throw new Error(`page ${page.status}`);
        const srcs = [...page.body.matchAll(/<img[^>]* src="([^"]+)"/g)].map((m) => m[1] as string);
        let webRequests = 1;
        await Promise.all(
          srcs.map(async (src) => {
            const u = new URL(src, origin);
            const base = mode === 'edge' ? hostOf(u.href) : origin;
            const r = await fetchIn(pools.has(base) ? base : origin, u.pathname);
            if (r.status !== 200) throw new Error(`image ${r.status}`);
            if (base === origin || r.cache !== 'HIT') webRequests++;
          }),
        );
        return { images: srcs.length, webRequests };
      };

      const images: ImageRow[] = [];
      for (const mode of ['origin', 'edge'] as const) {
        const base = mode === 'edge' ? edgeBase : origin;
        const random = mulberry32(11);
        const pick = zipf(manifest.photoIds.length, 1.1, random);
        const h = new LatencyHistogram();
        let loads = 0;
        let hits = 0;
        let misses = 0;
        let failed = 0;
        await closedLoop(async () => {
          const id = manifest.photoIds[pick()] as string;
          const started = performance.now();
          const r = await fetchIn(base, `/media/photos/${id}/${random() < 0.7 ? 'thumb' : 'display'}.webp`);
          h.record((performance.now() - started) * 1000);
          loads++;
          if (r.status !== 200) failed++;
          if (r.cache === 'HIT') hits++;
          else misses++;
        });
        const s = h.summary();
        const row: ImageRow = {
          mode,
          loads,
          perSecond: Math.round(loads / o.seconds),
          hitRatio: mode === 'edge' ? Math.round((1000 * hits) / Math.max(1, loads)) / 10 : null,
          // Every image load from the origin is an origin request; from the edge, only its misses.
          originPer1000: Math.round((1000 * (mode === 'edge' ? misses : loads)) / Math.max(1, loads)),
          p50: s.p50,
          p99: s.p99,
          failed,
        };
        images.push(row);
        ctx.log(
          `images from the ${mode}: ${loads} loads, ${row.perSecond}/s, hit ratio ${row.hitRatio ?? '-'} %, ${row.originPer1000} origin requests per 1000, p50 ${s.p50} ms, p99 ${s.p99} ms`,
        );
      }
      const edgeBytes = await metric('varnish_sma_g_bytes');
      const edgeObjects = await metric('varnish_main_n_object');

      const pages: PageRow[] = [];
      for (const mode of ['origin', 'edge'] as const) {
        const random = mulberry32(13);
        const h = new LatencyHistogram();
        let views = 0;
        let imageLoads = 0;
        let webRequests = 0;
        await closedLoop(async () => {
          const started = performance.now();
          const view = await pageView(mode, Math.floor(random() * manifest.users.length));
          h.record((performance.now() - started) * 1000);
          views++;
          imageLoads += view.images;
          webRequests += view.webRequests;
        });
        const s = h.summary();
        const row: PageRow = {
          mode,
          pageViews: views,
          pageViewsPerSecond: Math.round((10 * views) / o.seconds) / 10,
          imagesPerView: Math.round((10 * imageLoads) / Math.max(1, views)) / 10,
          webRequestsPerView: Math.round((10 * webRequests) / Math.max(1, views)) / 10,
          p50: s.p50,
          p99: s.p99,
        };
        pages.push(row);
        ctx.log(
          `page views, images from the ${mode}: ${row.pageViewsPerSecond}/s, ${row.imagesPerView} images and ${row.webRequestsPerView} web-tier requests per view, p99 ${s.p99} ms`,
        );
      }
      // The highest sustained rate: open loop (each page view starts on schedule, whatever the others do),
      // latency from its scheduled start to its last thumbnail; a rate holds when p99 ≤ the bound and < 1 % fail.
      const sweep: { mode: 'origin' | 'edge'; rate: number; p99: number; failed: number; held: boolean }[] = [];
      const highest: Record<string, number> = { origin: 0, edge: 0 };
      for (const mode of ['origin', 'edge'] as const) {
        for (const rate of o.rates) {
          const random = mulberry32(17);
          const h = new LatencyHistogram();
          let failed = 0;
          const total = Math.round(rate * o.stepSeconds);
          const start = performance.now();
          const views: Promise<void>[] = [];
          for (let i = 0; i < total; i++) {
            const due = start + (i * 1000) / rate;
            const wait = due - performance.now();
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
            const user = Math.floor(random() * manifest.users.length);
            views.push(
              (async () => {
                try {
                  await pageView(mode, user);
                  h.record((performance.now() - due) * 1000);
                } catch {
                  failed++;
                }
              })(),
            );
          }
          await Promise.all(views);
          const p99 = h.summary().p99;
          const held = p99 <= o.p99 && failed <= total / 100;
          sweep.push({ mode, rate, p99, failed, held });
          ctx.log(
            `sweep, images from the ${mode}: ${rate} page views/s: p99 ${p99} ms, ${failed} failed${held ? '' : ' (not sustained)'}`,
          );
          if (!held) break;
          highest[mode] = rate;
        }
      }
      await Promise.all([...pools.values()].map((p) => p.close()));
      const summary = [
        `Image loads (Zipf s = 1.1 over ${manifest.photoIds.length} photos, ${o.connections} at a time, ${o.seconds} s each):`,
        '',
        '| images from | loads/s | edge hit ratio % | origin requests per 1000 loads | p50 ms | p99 ms | failed |',
        '|---|---:|---:|---:|---:|---:|---:|',
        ...images.map(
          (r) =>
            `| ${r.mode} | ${r.perSecond} | ${r.hitRatio ?? '–'} | ${r.originPer1000} | ${r.p50} | ${r.p99} | ${r.failed} |`,
        ),
        '',
        `Edge memory after the image runs: ${Math.round(edgeBytes / 1024)} KiB in ${edgeObjects} objects (bound: malloc ${varnish.memory}).`,
        '',
        `Feed page views with every thumbnail (closed loop, ${o.connections} at a time, ${o.seconds} s each):`,
        '',
        '| images from | page views/s | images per view | web-tier requests per view | p50 ms | p99 ms |',
        '|---|---:|---:|---:|---:|---:|',
        ...pages.map(
          (r) =>
            `| ${r.mode} | ${r.pageViewsPerSecond} | ${r.imagesPerView} | ${r.webRequestsPerView} | ${r.p50} | ${r.p99} |`,
        ),
        '',
        `Highest sustained rate of feed page views with their thumbnails (open loop, ${o.stepSeconds} s a step, p99 ≤ ${o.p99} ms and < 1 % failed):`,
        '',
        '| images from | highest sustained page views/s | steps (rate: p99 ms, failed) |',
        '|---|---:|---|',
        ...(['origin', 'edge'] as const).map(
          (m) =>
            `| ${m} | ${highest[m]} | ${sweep
              .filter((x) => x.mode === m)
              .map((x) => `${x.rate}: ${x.p99}, ${x.failed}`)
              .join('; ')} |`,
        ),
      ];
      return { data: { images, pages, sweep, highest, edgeBytes, edgeObjects }, summary: summary.join('\n') };
    } finally {
      await target.stop();
    }
  },
});
