import type { LoadResult } from './load.ts';

/** The sweep's one rule: a rate holds while p99 stays within the bound and at most 1 % of requests fail. */
export const sweepRule = { maxErrorShare: 0.01, growth: 1.5, maxSteps: 12 } as const;

export interface SweepStep {
  rate: number;
  throughput: number;
  p99: number;
  errors: number;
  sustainable: boolean;
}

export const errorCount = (r: Pick<LoadResult, 'errors'>) => Object.values(r.errors).reduce((a, b) => a + b, 0);

/**
 * Runs `measure` at `startRate`, then 1.5× the rate each step, until a rate
 * does not hold (or 12 steps). Returns every step, the highest rate that held
 * and its result.
 */
export async function sweep(
  startRate: number,
  p99BoundMs: number,
  measure: (rate: number) => Promise<LoadResult>,
  log: (line: string) => void = () => {},
): Promise<{ steps: SweepStep[]; highest?: number; atHighest?: LoadResult }> {
  const steps: SweepStep[] = [];
  let highest: number | undefined;
  let atHighest: LoadResult | undefined;
  for (let rate = startRate, step = 0; step < sweepRule.maxSteps; step++, rate = Math.round(rate * sweepRule.growth)) {
    const r = await measure(rate);
    const errors = errorCount(r);
    const sustainable = r.latencyMs.p99 <= p99BoundMs && errors <= r.sent * sweepRule.maxErrorShare;
    steps.push({ rate, throughput: r.throughput, p99: r.latencyMs.p99, errors, sustainable });
    log(`rate ${rate}/s: p99 ${r.latencyMs.p99} ms, ${errors} errors → ${sustainable ? 'holds' : 'too much'}`);
    if (!sustainable) break;
    highest = rate;
    atHighest = r;
  }
  return { steps, highest, atHighest };
}
