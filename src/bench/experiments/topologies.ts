import { z } from 'zod';
import { defineExperiment, flag } from '../experiment.ts';
import { benchTopologies, topologyTable } from '../topologies.ts';

export const topologies = defineExperiment({
  name: 'topologies',
  title:
    'GET /api/v1/photos/{id} and /api/v1/feed on single, db, lb (1 and 2 web servers), cache beside a hello-world behind HAProxy',
  options: z.object({
    presets: z.string().optional().describe('only these presets, comma-separated (single, db, lb, cache)'),
    seconds: flag.number(10, 'seconds per measurement'),
    connections: flag.int(16, 'connections of the closed loop'),
    load: flag.number(0.5, 'open-loop rate as a fraction of the peak'),
    users: flag.int(51, 'seeded users (the viewer follows all the others)'),
    photos: flag.int(500, 'seeded photos'),
  }),
  async run(o, ctx) {
    const rows = await benchTopologies({
      presets: o.presets?.split(',').map((p) => p.trim()),
      seconds: o.seconds,
      connections: o.connections,
      loadFraction: o.load,
      users: o.users,
      photos: o.photos,
      log: ctx.log,
    });
    return { data: { rows }, summary: topologyTable(rows) };
  },
});
