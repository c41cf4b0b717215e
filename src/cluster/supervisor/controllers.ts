import type { Logger } from 'pino';
import client from 'prom-client';
import type { QueueDepth } from '../../ports/queue.ts';
import { webBackend } from '../components/load-balancer/haproxy.ts';
import { type ClusterState, loadState } from '../run/state.ts';
import type { AutoscalePolicy, Topology } from '../topology/schema.ts';
import { balancerOf, processesOf, webServers, workers } from '../topology/select.ts';
import { type Decision, decide, InFlightWindow } from './autoscaler.ts';

/** A per-server metric, sampled: the total over the tier and how many servers share it (null: no sample now). */
export interface Metric {
  name: string;
  help: string;
  sample(state: ClusterState): Promise<{ total: number; servers: number } | null>;
}

/** One tier of one data center that a controller scales. */
export interface ScaledTier {
  tier: string;
  dataCenter: string;
  current(t: Topology): number;
  policy(t: Topology): AutoscalePolicy | undefined;
  scaleTo(count: number): Promise<unknown>;
}

export interface Controller {
  /** The metric now: the mean per server over the sample window. */
  metric(): number;
  decisions(): Decision[];
  /** Forget the recommendations of the stabilization window (the policy changed). */
  reset(): void;
  stop(): void;
}

export interface ControllerOptions {
  runDir: string;
  logger: Logger;
  registry: client.Registry;
  /** True while another change of the tier is under way: no decision then. */
  busy(): boolean;
  sampleEveryMs?: number;
  windowMs?: number;
}

/**
 * A controller: Kubernetes HPA's rule (see autoscaler.ts) on one metric, for
 * one tier of one data center. It samples the metric every 250 ms, keeps the
 * mean over 10 s, decides every policy period, and scales through `tier`.
 * The web tier's autoscaler is one; the worker tier's (queue depth) is the
 * same controller with another metric.
 */
export function startController(tier: ScaledTier, metric: Metric, o: ControllerOptions): Controller {
  const labels = { tier: tier.tier, dataCenter: tier.dataCenter };
  // Shared by the controllers of every tier (one series per tier and data center).
  const gauge = (name: string, help: string) =>
    (o.registry.getSingleMetric(name) as client.Gauge | undefined) ??
    new client.Gauge({ name, help, labelNames: ['tier', 'dataCenter'], registers: [o.registry] });
  const metricGauge = gauge(`scaleout_autoscaler_${metric.name}`, metric.help);
  const desiredGauge = gauge('scaleout_autoscaler_desired_servers', "The autoscaler's last decision");
  const targetGauge = gauge('scaleout_autoscaler_target', 'The per-server value of the metric the autoscaler aims for');
  const window = new InFlightWindow(o.windowMs ?? 10_000);
  const history: { at: number; recommendation: number }[] = [];
  const decisions: Decision[] = [];
  let sampling = false;
  const sampleTimer = setInterval(async () => {
    if (sampling) return;
    sampling = true;
    try {
      const s = await metric.sample(loadState(o.runDir));
      if (s) {
        window.add(Date.now(), s.total, s.servers);
        metricGauge.set(labels, window.mean());
      }
    } catch {
      // the tier is changing: no sample
    } finally {
      sampling = false;
    }
  }, o.sampleEveryMs ?? 250);
  let lastDecisionAt = Date.now();
  // Once a second (the shortest period): one read of the state for the policy and the count.
  const decideTimer = setInterval(() => {
    const t = loadState(o.runDir).topology;
    const policy = tier.policy(t);
    if (!policy?.enabled) return;
    targetGauge.set(labels, policy.target);
    if (Date.now() - lastDecisionAt < policy.periodSeconds * 1000 - 100 || o.busy()) return;
    lastDecisionAt = Date.now();
    const current = tier.current(t);
    const d = decide(Date.now(), current, window.mean(), policy, history);
    decisions.push(d);
    if (decisions.length > 100) decisions.shift();
    desiredGauge.set(labels, d.desired);
    o.logger.info(
      {
        autoscaler: {
          ...d,
          tier: tier.tier,
          dataCenter: tier.dataCenter,
          metric: Number(d.metric.toFixed(3)),
          ratio: Number(d.ratio.toFixed(3)),
        },
      },
      `autoscaler: ${d.current} → ${d.desired} (${d.reason}; ${d.metric.toFixed(2)} ${metric.name} per server, target ${d.target})`,
    );
    if (d.desired !== current)
      void tier.scaleTo(d.desired).catch((err) => o.logger.error({ err }, 'autoscaling failed'));
  }, 1000);
  return {
    metric: () => window.mean(),
    decisions: () => decisions,
    reset: () => {
      history.length = 0;
    },
    stop() {
      clearInterval(sampleTimer);
      clearInterval(decideTimer);
    },
  };
}

/** How many requests a web server is still receiving the body of (its /healthz says), or 0 when it does not answer. */
async function receivingBody(w: { listen: { host: string; port: number } }): Promise<number> {
  try {
    const res = await fetch(`http://${w.listen.host}:${w.listen.port}/healthz`, { signal: AbortSignal.timeout(200) });
    const n = ((await res.json()) as { receivingBody?: number }).receivingBody;
    return typeof n === 'number' && n >= 0 ? n : 0;
  } catch {
    return 0;
  }
}

/**
 * The web tier's metric: requests in flight per ready web server (HAProxy's
 * `scur` plus the queues, the backend's and each server's, over the servers it has UP), less the requests whose
 * body is still arriving: a slow sender is no work for a server, and must not
 * scale the tier (bodies up to the balancer's buffer never reach a server
 * before they are whole; larger ones, uploads, are counted by each server).
 */
export const requestsInFlight = (dataCenter: string): Metric => ({
  name: 'in_flight_per_server',
  help: "The autoscaler's metric: requests in flight per ready web server, mean over 10 s",
  async sample({ topology: t, runDir }) {
    if (processesOf(t, 'loadBalancer', { dataCenter }).length === 0) return null;
    const [{ servers, queued }, receiving] = await Promise.all([
      webBackend({ runDir, lb: balancerOf(t, dataCenter) }),
      Promise.all(webServers(t, dataCenter).map(receivingBody)),
    ]);
    const ready = servers.filter((s) => s.status.startsWith('UP')).length;
    // Served now, waiting for one server, and waiting in the backend's queue for any (admission control).
    const inFlight = servers.reduce((a, s) => a + s.current + s.queued, 0) + queued;
    return { total: Math.max(0, inFlight - receiving.reduce((a, n) => a + n, 0)), servers: ready };
  },
});

/** The web tier of a data center, as a controller scales it. */
export const webTier = (dataCenter: string, scaleTo: (count: number) => Promise<unknown>): ScaledTier => ({
  tier: 'web',
  dataCenter,
  current: (t) => webServers(t, dataCenter).length,
  policy: (t) => t.options.autoscale,
  scaleTo,
});

/**
 * The worker tier's metric: jobs ready or running per worker slot (waiting +
 * prioritized + due delayed + active, over workers × concurrency), from
 * BullMQ's counts. KEDA's Redis-list scaler reads only the wait list's
 * length, so it misses prioritized jobs (every job here has a priority, for
 * fairness) and running ones; counting the running ones also keeps the tier
 * from scaling in while its workers are busy.
 */
export const queueDepth = (dataCenter: string, depth: () => Promise<QueueDepth>): Metric => ({
  name: 'jobs_per_worker_slot',
  help: "The worker autoscaler's metric: jobs ready or running per worker slot (workers × concurrency), mean over 10 s",
  async sample({ topology: t }) {
    const d = await depth();
    return { total: (d.waiting + d.active) / t.options.workerConcurrency, servers: workers(t, dataCenter).length };
  },
});

/** The worker tier of a data center, as a controller scales it. */
export const workerTier = (dataCenter: string, scaleTo: (count: number) => Promise<unknown>): ScaledTier => ({
  tier: 'worker',
  dataCenter,
  current: (t) => workers(t, dataCenter).length,
  policy: (t) => t.options.workerAutoscale,
  scaleTo,
});
