import type { Experiment } from '../experiment.ts';
import { ceiling } from './ceiling.ts';
import { drill } from './drill.ts';
import { edge } from './edge.ts';
import { endpoints } from './endpoints.ts';
import { eviction } from './eviction.ts';
import { failover } from './failover.ts';
import { fsync } from './fsync.ts';
import { grow } from './grow.ts';
import { invalidation } from './invalidation.ts';
import { overload } from './overload.ts';
import { presets } from './presets.ts';
import { queue } from './queue.ts';
import { reshard } from './reshard.ts';
import { soak } from './soak.ts';
import { start } from './start.ts';
import { stateless } from './stateless.ts';
import { topologies } from './topologies.ts';

/** Every experiment `scaleout bench list` shows and `scaleout bench run <name>` runs. */
export const experiments: readonly Experiment[] = [
  endpoints,
  start,
  topologies,
  failover,
  presets,
  stateless,
  fsync,
  eviction,
  invalidation,
  edge,
  queue,
  overload,
  soak,
  ceiling,
  reshard,
  grow,
  drill,
] as unknown as readonly Experiment[];

export const experimentNamed = (name: string): Experiment => {
  const e = experiments.find((x) => x.name === name);
  if (!e) throw new Error(`no experiment named ${name}: ${experiments.map((x) => x.name).join(', ')}`);
  return e;
};
