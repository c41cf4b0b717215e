import { z } from 'zod';
import { defineExperiment, flag } from '../experiment.ts';
import { presetTable } from '../presets.ts';
import { scenarioNames } from '../scenarios.ts';
import { benchStateless } from '../stateless.ts';

export const stateless = defineExperiment({
  name: 'stateless',
  title:
    'step 1.6 on the stateless preset: capacity at 1, 2, 4 web servers; the autoscaler under a ramp; a rolling deploy under load',
  options: z.object({
    parts: flag.list(['capacity', 'ramp', 'deploy'] as const, 'capacity,ramp,deploy', 'parts to run'),
    scenario: z.enum(scenarioNames).default('mixed').describe('the load'),
    webCounts: flag.numbers('1,2,4', 'capacity: web-server counts to sweep'),
    p99: flag.number(100, 'capacity: the p99 bound, ms'),
    stepSeconds: flag.number(10, 'capacity: seconds per sweep step'),
    startRate: flag.number(40, 'capacity: first rate of the sweep'),
    low: flag.number(50, 'ramp: the low rate'),
    high: flag.number(400, 'ramp: the high rate'),
    target: flag.number(4, 'ramp: requests in flight per server the autoscaler aims for'),
    max: flag.int(6, 'ramp: most web servers'),
    stabilization: flag.int(60, "ramp: the autoscaler's scale-down window, s"),
    deployRate: flag.number(150, 'deploy: the steady rate'),
    deploySeconds: flag.number(60, 'deploy: how long the load runs (the deploy starts after a fifth)'),
    users: flag.int(100, 'seeded users'),
    photos: flag.int(200, 'seeded photos'),
  }),
  async run(o, ctx) {
    const result = await benchStateless({
      out: ctx.out,
      scenario: o.scenario,
      p99Ms: o.p99,
      stepSeconds: o.stepSeconds,
      startRate: o.startRate,
      webCounts: o.webCounts,
      ramp: { low: o.low, high: o.high, target: o.target, max: o.max, stabilizationSeconds: o.stabilization },
      deploy: { rate: o.deployRate, seconds: o.deploySeconds },
      parts: o.parts,
      users: o.users,
      photos: o.photos,
      log: ctx.log,
    });
    const parts: string[] = [];
    if (result.capacity) parts.push(presetTable(result.capacity, o.p99));
    if (result.ramp) {
      const r = result.ramp;
      parts.push(
        `ramp (${r.out}/report.html): ${r.sent} sent, ${r.failed} failed, ${r.lostWrites} writes lost; servers max ${r.maxServers}, at the end ${r.endServers}\n\n| phase | seconds | p99 ms | web servers seen |\n|---|---|---:|---|\n${r.phases.map((p) => `| ${p.phase} | ${p.from}–${p.to} | ${p.p99} | ${p.servers} |`).join('\n')}`,
      );
    }
    if (result.deploy) {
      const d = result.deploy;
      parts.push(
        `deploy under ${d.rate} req/s: ${d.replaced} servers replaced in ${d.deploySeconds} s; ${d.sent} sent, ${d.failed} failed, ${d.lostWrites} writes lost; p99 before ${d.p99Before} ms, during ${d.p99During} ms, after ${d.p99After} ms`,
      );
    }
    return { data: result as unknown as Record<string, unknown>, summary: parts.join('\n\n') };
  },
});
