import { Pool } from 'undici';
import { z } from 'zod';
import { webServers } from '../../cluster/topology/index.ts';
import { renderEnv } from '../../config.ts';
import { defineExperiment, flag } from '../experiment.ts';
import { LatencyHistogram } from '../load.ts';
import { seed } from '../seed.ts';
import { startPreset } from '../targets.ts';

interface Row {
  invalidation: 'auto' | 'off';
  rounds: number;
  stale: number;
  likeP50: number;
  likeP99: number;
  readP50: number;
}

/**
 * The `lb` defect and its fix, measured: on `lb` (two web servers, one
 * PostgreSQL cluster, no Redis) a like through web-1 and a read at once
 * through web-2, `rounds` times, with the invalidation channel on (NOTIFY,
 * acknowledged) and off. Reports the stale reads and what the wait for the
 * other server's acknowledgement costs the like.
 */
export const invalidation = defineExperiment({
  name: 'invalidation',
  title:
    'lb without Redis: stale reads across web servers and the cost of a like, with invalidation by NOTIFY on and off',
  options: z.object({ rounds: flag.int(200, 'likes and unlikes through web-1, each read at once through web-2') }),
  async run(o, ctx) {
    const rows: Row[] = [];
    for (const mode of ['off', 'auto'] as const) {
      ctx.log(`starting lb with SCALEOUT_CACHE_INVALIDATION=${mode}`);
      const target = await startPreset('lb', {
        name: `bench-invalidation-${mode}`,
        supervise: false,
        webEnv: renderEnv({ cacheInvalidation: mode, cacheTtlSeconds: 600 }),
      });
      try {
        const manifest = await seed({ target: target.origin, users: 3, photos: 1, follows: 1, seed: 3 });
        const [w1, w2] = webServers(target.state.topology).map(
          (w) => new Pool(`http://${w.listen.host}:${w.listen.port}`),
        );
        if (!w1 || !w2) throw new Error('lb has two web servers');
        const token = manifest.tokens[2] as string;
        const photo = manifest.photoIds[0] as string;
        const headers = { authorization: `Bearer ${token}` };
        const read = async () => {
          const started = performance.now();
          const res = await w2.request({ method: 'GET', path: `/api/v1/photos/${photo}`, headers });
          const body = (await res.body.json()) as { photo: { likedByMe: boolean; likeCount: number } };
          return { photo: body.photo, us: (performance.now() - started) * 1000 };
        };
        const base = (await read()).photo.likeCount;
        const likes = new LatencyHistogram();
        const reads = new LatencyHistogram();
        let stale = 0;
        for (let i = 0; i < o.rounds; i++) {
          const liked = i % 2 === 0;
          const started = performance.now();
          const res = await w1.request({
            method: liked ? 'PUT' : 'DELETE',
            path: `/api/v1/photos/${photo}/like`,
            headers,
          });
          await res.body.dump();
          if (res.statusCode !== 204) throw new Error(`like: ${res.statusCode}`);
          likes.record((performance.now() - started) * 1000);
          const r = await read();
          reads.record(r.us);
          if (r.photo.likedByMe !== liked || r.photo.likeCount !== base + (liked ? 1 : 0)) stale++;
        }
        await Promise.all([w1.close(), w2.close()]);
        const l = likes.summary();
        rows.push({
          invalidation: mode,
          rounds: o.rounds,
          stale,
          likeP50: l.p50,
          likeP99: l.p99,
          readP50: reads.summary().p50,
        });
        ctx.log(`${mode}: ${stale} of ${o.rounds} reads stale; like p50 ${l.p50} ms, p99 ${l.p99} ms`);
      } finally {
        await target.stop();
      }
    }
    const table = [
      '| SCALEOUT_CACHE_INVALIDATION | rounds | stale reads through web-2 | like p50 ms | like p99 ms | read p50 ms |',
      '|---|---:|---:|---:|---:|---:|',
      ...rows.map(
        (r) => `| ${r.invalidation} | ${r.rounds} | ${r.stale} | ${r.likeP50} | ${r.likeP99} | ${r.readP50} |`,
      ),
    ];
    return { data: { rows }, summary: table.join('\n') };
  },
});
