import { z } from 'zod';
import { benchCeiling, ceilingSummary } from '../ceiling.ts';
import { defineExperiment, flag } from '../experiment.ts';

export const ceiling = defineExperiment({
  name: 'ceiling',
  title:
    "the vertical ceiling of one PostgreSQL primary on cache: db-writes (every request a write) swept until p99 passes 100 ms, with the primary's CPU, WAL syncs and wait events per step",
  options: z.object({
    preset: z
      .enum(['cache', 'sharded'])
      .default('cache')
      .describe('cache (one primary) or sharded (the shard clusters)'),
    startRate: flag.number(100, 'the first rate, req/s'),
    growth: flag.number(1.25, "each step's rate over the last"),
    stepSeconds: flag.int(20, 'how long each step runs'),
    p99: flag.number(100, 'the p99 bound, ms'),
    users: flag.int(100, 'seeded users'),
    photos: flag.int(300, 'seeded photos'),
    asynchronous: flag.bool('asynchronous replication (default: synchronous, as the presets run)'),
  }),
  async run(o, ctx) {
    const result = await benchCeiling({
      preset: o.preset,
      startRate: o.startRate,
      growth: o.growth,
      stepSeconds: o.stepSeconds,
      p99Ms: o.p99,
      users: o.users,
      photos: o.photos,
      synchronous: !o.asynchronous,
      log: ctx.log,
    });
    return { data: { ceiling: result }, summary: ceilingSummary(result, { p99Ms: o.p99, stepSeconds: o.stepSeconds }) };
  },
});
