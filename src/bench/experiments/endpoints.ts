import { z } from 'zod';
import { benchEndpoints, endpointTable } from '../endpoints.ts';
import { defineExperiment, flag } from '../experiment.ts';

export const endpoints = defineExperiment({
  name: 'endpoints',
  title: 'single server: peak req/s and open-loop latency of three reads beside a Fastify hello-world',
  options: z.object({
    seconds: flag.number(10, 'seconds per measurement'),
    connections: flag.int(16, 'connections of the closed loop'),
    load: flag.number(0.5, 'open-loop rate as a fraction of the peak'),
  }),
  async run(o, ctx) {
    const rows = await benchEndpoints({
      seconds: o.seconds,
      connections: o.connections,
      loadFraction: o.load,
      log: ctx.log,
    });
    return { data: { rows }, summary: endpointTable(rows) };
  },
});
