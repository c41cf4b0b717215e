import { z } from 'zod';
import { defineExperiment, flag } from '../experiment.ts';
import { benchOverload } from '../overload.ts';

export const overload = defineExperiment({
  name: 'overload',
  title:
    'overload on cache: the sustainable rate, then 2,000 req/s over 1,000 connections: goodput, served p99, 503s with Retry-After, health after; beside no admission control',
  options: z.object({
    rate: flag.number(2000, 'the overload, req/s'),
    seconds: flag.number(15, 'the overload, seconds'),
    connections: flag.int(1000, 'the overload, connections'),
    startRate: flag.number(300, 'the sweep: first rate'),
    growth: flag.number(1.2, 'the sweep: rate × this each step'),
    stepSeconds: flag.number(10, 'the sweep: seconds per step'),
    p99: flag.number(100, 'the sweep: the p99 bound, ms'),
    users: flag.int(100, 'seeded users'),
    photos: flag.int(200, 'seeded photos'),
    maxRequestsPerServer: flag.int(
      0,
      "the admission variant: requests at once per web server (0: the topology's default)",
    ),
    queueTimeoutMs: flag.int(0, "the admission variant: the balancer's queue timeout, ms (0: the topology's default)"),
    variants: flag.list(
      ['admission', 'door', 'none'] as const,
      'admission,none',
      "the topologies: with admission control (the default: a 25 ms queue timeout), with the door (the queue's depth per server, a 500 ms timeout behind it: --queue-depth-per-server 24 --queue-timeout-ms 500), and without admission control (the baseline)",
    ),
  }),
  async run(o, ctx) {
    const { variants, summary } = await benchOverload({
      out: ctx.out,
      rate: o.rate,
      seconds: o.seconds,
      connections: o.connections,
      startRate: o.startRate,
      growth: o.growth,
      stepSeconds: o.stepSeconds,
      p99Ms: o.p99,
      users: o.users,
      photos: o.photos,
      variants: o.variants,
      admission: {
        ...(o.maxRequestsPerServer ? { maxRequestsPerServer: o.maxRequestsPerServer } : {}),
        ...(o.queueTimeoutMs ? { queueTimeoutMs: o.queueTimeoutMs } : {}),
      },
      log: ctx.log,
    });
    return { data: { variants }, summary };
  },
});
