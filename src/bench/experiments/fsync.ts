import { z } from 'zod';
import { defineExperiment, flag } from '../experiment.ts';
import { benchFsync, fsyncTable } from '../fsync.ts';

export const fsync = defineExperiment({
  name: 'fsync',
  title: 'the cost of durable originals: the upload scenario with SCALEOUT_BLOB_FSYNC on and off',
  options: z.object({
    rate: flag.number(20, 'uploads per second (open loop)'),
    seconds: flag.number(20, 'seconds per run'),
    users: flag.int(20, 'seeded users who upload'),
  }),
  async run(o, ctx) {
    const rows = await benchFsync({ ...o, out: ctx.out, log: ctx.log });
    return { data: { rows }, summary: fsyncTable(rows) };
  },
});
