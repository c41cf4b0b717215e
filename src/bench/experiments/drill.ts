import { z } from 'zod';
import { benchDrill, type DrillMode, drillSummary } from '../drill.ts';
import { defineExperiment, flag } from '../experiment.ts';

export const drill = defineExperiment({
  name: 'drill',
  title:
    'the data-center drill on multi-dc: the primary data center killed under open-loop mixed from both data centers through the DNS; time to the other, failed requests, RPO (async, then sync), rejoin',
  options: z.object({
    modes: flag.list<DrillMode>(
      ['async', 'sync'],
      'async,sync',
      'the phases, in order, each killing the primary data center',
    ),
    rate: flag.number(15, "requests per second from each data center's clients"),
    seconds: flag.number(60, "each phase's load"),
    killAfter: flag.number(20, 'when the primary data center is killed, seconds into the load'),
    users: flag.int(40, 'seeded users'),
    photos: flag.int(60, 'seeded photos'),
  }),
  async run(o, ctx) {
    if (o.killAfter >= o.seconds) throw new Error('--kill-after must be less than --seconds');
    const phases = await benchDrill({
      out: ctx.out,
      modes: o.modes,
      ratePerDataCenter: o.rate,
      seconds: o.seconds,
      killAfter: o.killAfter,
      users: o.users,
      photos: o.photos,
      log: ctx.log,
    });
    return {
      data: { phases },
      summary: drillSummary(phases, { ratePerDataCenter: o.rate, seconds: o.seconds, killAfter: o.killAfter }),
    };
  },
});
