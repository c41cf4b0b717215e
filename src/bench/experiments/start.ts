import { z } from 'zod';
import { defineExperiment, flag } from '../experiment.ts';
import { benchStart, startTable } from '../start.ts';

export const start = defineExperiment({
  name: 'start',
  title: 'warm start of the single server: spawn to the first 200 of /healthz, natively and through tsx',
  options: z.object({ runs: flag.int(10, 'starts of each variant') }),
  async run(o, ctx) {
    const rows = await benchStart({ runs: o.runs, log: ctx.log });
    return { data: { rows }, summary: startTable(rows) };
  },
});
