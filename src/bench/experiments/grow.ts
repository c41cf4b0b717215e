import { z } from 'zod';
import { defineExperiment, flag } from '../experiment.ts';
import { benchGrow, growSummary } from '../grow.ts';

export const grow = defineExperiment({
  name: 'grow',
  title:
    'on sharded: a third Patroni cluster added and the shards rebalanced onto it under writes (the moves, their fenced time, the ledger), then a hot shard and the shard balancer',
  options: z.object({
    users: flag.int(100, 'seeded users'),
    photos: flag.int(200, 'seeded photos'),
    rate: flag.number(60, "the write load's rate during the growth, req/s (db-writes)"),
    hotRate: flag.number(25, "the hot user's follows and unfollows per second"),
  }),
  async run(o, ctx) {
    const result = await benchGrow({ ...o, log: ctx.log });
    return { data: { grow: result }, summary: growSummary(result) };
  },
});
