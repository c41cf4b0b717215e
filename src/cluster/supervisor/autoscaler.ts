import type { AutoscalePolicy } from '../topology/schema.ts';

/**
 * The web tier's autoscaler, Kubernetes HPA's algorithm on one metric:
 * requests in flight per web server, as the balancer counts them (`scur`).
 *
 * Why in flight and not CPU or event-loop utilisation: every process here
 * shares two cores, so a server's CPU share says more about its neighbours
 * than about its load, and one server's event-loop utilisation rises with the
 * machine's contention too. Requests in flight are the load itself (Little's
 * law: rate × latency): they grow when the rate grows and when the servers
 * slow down, and they divide by the server count the way HPA assumes. It is
 * the metric Knative's autoscaler uses ("concurrency").
 */
export interface Decision {
  at: number;
  current: number;
  /** The metric: mean requests in flight per ready web server over the sample window. */
  metric: number;
  target: number;
  ratio: number;
  /** ceil(current × metric / target), or current within the tolerance. */
  recommendation: number;
  /** What it scales to: up at once, down to the highest recommendation of the stabilization window. */
  desired: number;
  reason: string;
}

/** |ratio − 1| within the tolerance (1e-9 for floating point: 2.2 / 2 is 1.1000000000000001). */
const withinTolerance = (ratio: number, tolerance: number) => Math.abs(ratio - 1) <= tolerance + 1e-9;

/** HPA's raw recommendation, before bounds and stabilization. */
export function recommend(current: number, metric: number, p: Pick<AutoscalePolicy, 'target' | 'tolerance'>): number {
  const ratio = metric / p.target;
  if (withinTolerance(ratio, p.tolerance)) return current;
  return Math.max(1, Math.ceil(current * ratio));
}

const clamp = (n: number, p: Pick<AutoscalePolicy, 'min' | 'max'>) => Math.min(p.max, Math.max(p.min, n));

/**
 * One decision. `history` holds the recommendations of earlier decisions
 * (newest last); it is trimmed to the stabilization window and the new one
 * is appended.
 */
export function decide(
  now: number,
  current: number,
  metric: number,
  policy: AutoscalePolicy,
  history: { at: number; recommendation: number }[],
): Decision {
  const recommendation = clamp(recommend(current, metric, policy), policy);
  const windowStart = now - policy.stabilizationSeconds * 1000;
  while (history.length > 0 && (history[0]?.at ?? 0) < windowStart) history.shift();
  history.push({ at: now, recommendation });
  const ratio = metric / policy.target;
  const base = { at: now, current, metric, target: policy.target, ratio, recommendation };
  if (current < policy.min) return { ...base, desired: policy.min, reason: 'below min' };
  if (current > policy.max) return { ...base, desired: policy.max, reason: 'above max' };
  if (recommendation > current) return { ...base, desired: recommendation, reason: 'scale up' };
  // Down only as far as the highest recommendation of the window allows (flapping damped).
  const stabilized = Math.max(...history.map((h) => h.recommendation));
  if (stabilized < current) return { ...base, desired: stabilized, reason: 'scale down' };
  if (recommendation < current)
    return { ...base, desired: current, reason: `held by the stabilization window (max ${stabilized})` };
  return {
    ...base,
    desired: current,
    reason: withinTolerance(ratio, policy.tolerance) ? 'within tolerance' : 'at a bound',
  };
}

/** The metric's samples: requests in flight per ready server, averaged over a sliding window. */
export class InFlightWindow {
  private samples: { at: number; perServer: number }[] = [];
  private readonly windowMs: number;
  constructor(windowMs: number) {
    this.windowMs = windowMs;
  }

  add(at: number, inFlight: number, readyServers: number): void {
    this.samples.push({ at, perServer: readyServers > 0 ? inFlight / readyServers : inFlight });
    while (this.samples.length > 0 && (this.samples[0]?.at ?? 0) < at - this.windowMs) this.samples.shift();
  }

  mean(): number {
    if (this.samples.length === 0) return 0;
    return this.samples.reduce((a, s) => a + s.perServer, 0) / this.samples.length;
  }
}
