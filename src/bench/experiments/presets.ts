import { z } from 'zod';
import { presets as presetNames } from '../../cluster/topology/index.ts';
import { defineExperiment, flag } from '../experiment.ts';
import { benchPresets, presetTable } from '../presets.ts';
import { scenarioNames } from '../scenarios.ts';

export const presets = defineExperiment({
  name: 'presets',
  title: 'the highest rate of a scenario each preset sustains with p99 under a bound, beside a hello-world',
  options: z.object({
    presets: flag.list(presetNames, 'single,db,lb,cache', 'presets to sweep'),
    scenarios: flag.list(scenarioNames, 'mixed', 'scenarios to sweep on each preset'),
    p99: flag.number(100, 'the p99 bound, ms'),
    stepSeconds: flag.number(10, 'seconds per sweep step'),
    startRate: flag.number(20, 'first rate of the sweep (hello-world starts at 10×)'),
    users: flag.int(100, 'seeded users'),
    photos: flag.int(200, 'seeded photos'),
    via: z
      .enum(['public', 'balancer'])
      .default('public')
      .describe('where the load enters: the public URL (the edge where there is one) or the load balancer'),
  }),
  async run(o, ctx) {
    const rows = await benchPresets({
      presets: o.presets,
      scenarios: o.scenarios,
      p99Ms: o.p99,
      stepSeconds: o.stepSeconds,
      startRate: o.startRate,
      users: o.users,
      photos: o.photos,
      via: o.via,
      out: ctx.out,
      log: ctx.log,
    });
    return { data: { rows }, summary: presetTable(rows, o.p99) };
  },
});
