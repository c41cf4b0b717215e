import { z } from 'zod';
import { defineExperiment, flag } from '../experiment.ts';
import { scenarioNames } from '../scenarios.ts';
import { benchSoak, soakSummary } from '../soak.ts';

export const soak = defineExperiment({
  name: 'soak',
  title:
    'a soak on stateless: mixed (its follows undone after a while) at 70 % of the sustainable rate for 30 min; RSS, p99 and errors each minute against the first 5 minutes',
  options: z.object({
    minutes: flag.int(30, 'how long the soak runs'),
    share: flag.number(0.7, 'the share of the sustainable rate'),
    sustainableRate: flag.int(0, 'the sustainable rate, when known (0: a sweep finds it first)'),
    startRate: flag.number(200, "the sweep's first rate"),
    stepSeconds: flag.number(60, 'the sweep: seconds at each rate'),
    p99: flag.number(100, "the sweep's p99 bound, ms"),
    baselineMinutes: flag.int(5, 'the first minutes, the baseline'),
    scenario: z
      .enum(scenarioNames)
      .default('steady')
      .describe('the load (steady: mixed whose follows are undone after a while, so the graph stays as seeded)'),
    door: flag.bool(
      "admission control by the queue's depth at the door (--queue-depth-per-server 24 --queue-timeout-ms 500) instead of the 25 ms queue timeout",
    ),
    users: flag.int(100, 'seeded users'),
    photos: flag.int(200, 'seeded photos'),
  }),
  async run(o, ctx) {
    if (o.minutes <= o.baselineMinutes) throw new Error('--minutes must be more than --baseline-minutes');
    const result = await benchSoak({
      out: ctx.out,
      minutes: o.minutes,
      share: o.share,
      sustainableRate: o.sustainableRate || undefined,
      startRate: o.startRate,
      stepSeconds: o.stepSeconds,
      p99Ms: o.p99,
      baselineMinutes: o.baselineMinutes,
      users: o.users,
      photos: o.photos,
      scenario: o.scenario,
      door: o.door,
      log: ctx.log,
    });
    return { data: { soak: result }, summary: soakSummary(result, o) };
  },
});
