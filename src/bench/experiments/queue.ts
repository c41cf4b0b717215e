import { z } from 'zod';
import { presets as presetNames } from '../../cluster/topology/index.ts';
import { defineExperiment, flag } from '../experiment.ts';
import { benchQueue, queueTables } from '../queue.ts';

/**
 * Step 1.8 measured: an upload burst with feed reads beside it on
 * `stateless` (each web server makes the variants of the photos it
 * accepted) and on `queue` (web servers only enqueue; workers scaled by
 * queue depth make them), in one run: upload and read latency, upload →
 * ready from PostgreSQL's rows, and on `queue` the workers and the queue
 * depth each second. Then, on the last preset, the CPU one request of each
 * kind costs in each tier.
 */
export const queue = defineExperiment({
  name: 'queue',
  title:
    'uploads processed in the web servers (stateless) and in workers (queue): latency, upload → ready, CPU per request',
  options: z.object({
    presets: flag.list(presetNames, 'stateless,queue', 'presets, in order (the CPU table is measured on the last)'),
    uploadRate: flag.number(6, 'uploads per second (2000 × 1500 JPEGs)'),
    readRate: flag.number(100, 'home-feed reads per second beside them'),
    seconds: flag.number(30, 'seconds of the burst'),
    users: flag.int(30, 'seeded users'),
    uploadsOnly: flag.bool('only the upload bursts (no CPU table, no profiles)'),
    profile: flag.bool(
      'also profile each kind of request (but the cached read) in a web server of its own (--cpu-prof)',
    ),
  }),
  async run(o, ctx) {
    const r = await benchQueue({ ...o, out: ctx.out, log: ctx.log });
    return { data: r, summary: queueTables(r) };
  },
});
