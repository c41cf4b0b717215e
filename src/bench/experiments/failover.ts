import { z } from 'zod';
import { defineExperiment, flag } from '../experiment.ts';
import { benchFailover } from '../failover.ts';

export const failover = defineExperiment({
  name: 'failover',
  title: 'kill -9 the primary of an lb topology under a write load: the write outage and acknowledged writes lost',
  options: z.object({
    async: flag.bool('asynchronous replication (default: synchronous)'),
    rate: flag.number(100, 'writes (follows) per second'),
    users: flag.int(60, 'users whose follows are written'),
    seconds: flag.number(30, 'length of the write load'),
    keep: flag.bool('leave the topology running afterwards (to read its logs)'),
    killAfter: flag.number(10, 'when to kill the primary, in seconds'),
  }),
  async run(o, ctx) {
    const result = await benchFailover({
      synchronous: !o.async,
      writeRate: o.rate,
      users: o.users,
      seconds: o.seconds,
      keep: o.keep,
      killAfterSeconds: o.killAfter,
      log: ctx.log,
    });
    const rows = Object.entries(result).map(([k, v]) => `| ${k} | ${typeof v === 'object' ? JSON.stringify(v) : v} |`);
    return { data: { result }, summary: `| measure | value |\n|---|---|\n${rows.join('\n')}` };
  },
});
