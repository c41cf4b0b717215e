import { describe, expect, it } from 'vitest';
import { type CeilingStep, verdictOf } from '../../src/bench/ceiling.ts';

const step = (over: Partial<CeilingStep>): CeilingStep => ({
  rate: 400,
  throughput: 390,
  p50: 10,
  p99: 150,
  errors: 0,
  holds: false,
  cpu: { machine: 1.0, postgres: 0.4, web: 0.4, loadBalancer: 0.05, redis: 0.05, patroni: 0.02, generator: 0.08 },
  commitsPerSecond: 400,
  walMbPerSecond: 1,
  walSyncsPerSecond: 300,
  walSyncMs: 2,
  activeBackends: 6,
  waits: { 'IPC:SyncRep': 0.6, CPU: 0.3, 'IO:WALSync': 0.1 },
  ...over,
});

describe('the ceiling verdict', () => {
  it('names the machine CPU when it is ≥ 90 % busy, with who used it, heaviest first', () => {
    const v = verdictOf(step({ cpu: { ...step({}).cpu, machine: 1.9, web: 1.1 } }), 2);
    expect(v).toMatch(/^CPU: the machine's 2 cores 95 % busy at 400 req\/s \(cores used: web 1.1, postgres 0.4/);
  });

  it('else names what the primary waited on most', () => {
    expect(verdictOf(step({}), 2)).toMatch(
      /^not the machine's CPU \(50 % busy.*mostly waiting on IPC:SyncRep \(60 %\)$/,
    );
  });
});
