import { z } from 'zod';
import { defineExperiment, flag } from '../experiment.ts';
import { benchReshard, reshardSummary } from '../reshard.ts';

export const reshard = defineExperiment({
  name: 'reshard',
  title:
    'on sharded: logical shards moved under a write load (the fenced time per move, its duration per MB, the ledger), and the skew of rows and statements per shard under mixed and celebrity',
  options: z.object({
    users: flag.int(100, 'seeded users'),
    photos: flag.int(200, 'seeded photos'),
    moves: flag.int(6, 'moves during the write load'),
    rate: flag.number(100, "the write load's rate, req/s (db-writes)"),
    skewSeconds: flag.int(20, 'seconds of mixed, then of celebrity, whose statements per shard are counted'),
  }),
  async run(o, ctx) {
    const result = await benchReshard({ ...o, log: ctx.log });
    return { data: { reshard: result }, summary: reshardSummary(result) };
  },
});
