import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { projectRoot } from '../cluster/components/web/process.ts';
import { sleep } from '../cluster/process.ts';
import type { ClusterState } from '../cluster/run/index.ts';
import { callSupervisor } from '../cluster/supervisor/client.ts';
import { Ledger, verifyLedger } from './ledger.ts';
import { LatencyHistogram, openLoop } from './load.ts';
import { helloSweep, type PresetRow, sweepRow } from './presets.ts';
import { loadReport, machine, writeReports } from './report.ts';
import { runBench } from './run.ts';
import { buildScenario, type ScenarioName } from './scenarios.ts';
import { type SeedManifest, seed } from './seed.ts';
import { startPreset } from './targets.ts';

/**
 * Step 1.6 measured on the `stateless` preset: what one web server can take,
 * the autoscaler following an open-loop ramp, and a rolling deploy under load.
 */
export interface StatelessBenchOptions {
  out: string;
  scenario: ScenarioName;
  /** Capacity: the sweep's bound and steps, at each web-server count. */
  p99Ms: number;
  stepSeconds: number;
  startRate: number;
  webCounts: number[];
  /** Ramp: low → high → low req/s; the autoscaler's target (requests in flight per server). */
  ramp: { low: number; high: number; target: number; max: number; stabilizationSeconds: number };
  /** Deploy: the steady rate, and how long the run lasts (the deploy starts after a fifth of it). */
  deploy: { rate: number; seconds: number };
  parts: ('capacity' | 'ramp' | 'deploy')[];
  users: number;
  photos: number;
  log: (line: string) => void;
}

export interface RampResult {
  out: string;
  policy: unknown;
  sent: number;
  failed: number;
  lostWrites: number;
  /** Per phase: the rate asked, p99, and the web-server counts seen. */
  phases: { phase: string; from: number; to: number; p99: number; servers: string }[];
  maxServers: number;
  endServers: number;
}

export interface DeployResult {
  rate: number;
  sent: number;
  failed: number;
  lostWrites: number;
  deploySeconds: number;
  p99Before: number;
  p99During: number;
  p99After: number;
  replaced: number;
}

const scale = async (state: ClusterState, web: number) => {
  const answer = await callSupervisor<{ error?: string }>(state, 'POST', '/scale', { web });
  if (answer.status !== 200) throw new Error(`scale to ${web}: ${answer.body.error}`);
};
const autoscale = async (state: ClusterState, policy: Record<string, unknown>) => {
  const answer = await callSupervisor<{ error?: string; autoscale?: unknown }>(state, 'POST', '/autoscale', policy);
  if (answer.status !== 200) throw new Error(`autoscale: ${answer.body.error}`);
  return answer.body.autoscale;
};
const supervisorStatus = (state: ClusterState) =>
  callSupervisor<{ webServers: string[]; metric: number }>(state, 'GET', '/status').then((a) => a.body);

/** The highest rate with p99 under the bound at 1, 2, 4… web servers (the autoscaler off), beside a hello-world. */
async function capacity(state: ClusterState, manifest: SeedManifest, o: StatelessBenchOptions): Promise<PresetRow[]> {
  const rows: PresetRow[] = [await helloSweep(o)];
  for (const n of o.webCounts) {
    await scale(state, n);
    const out = path.join(o.out, `capacity-${n}`);
    const report = await runBench({
      target: state.publicUrl,
      scenario: o.scenario,
      rate: o.startRate,
      seconds: o.stepSeconds,
      connections: 64,
      out,
      manifest,
      sweepP99Ms: o.p99Ms,
      log: (l) => o.log(`${n} web servers: ${l}`),
    });
    rows.push(await sweepRow(`stateless, ${n} web server${n > 1 ? 's' : ''} (${o.scenario})`, report, out));
  }
  return rows;
}

/** The autoscaler on, an open-loop ramp low → high → low, the server count sampled each second. */
async function ramp(state: ClusterState, manifest: SeedManifest, o: StatelessBenchOptions): Promise<RampResult> {
  const { low, high } = o.ramp;
  // 30 s low, 60 s up, 60 s high, 60 s down, then low for the stabilization window and a minute more.
  const phases = [
    { phase: `${low} req/s`, seconds: 30, rate: () => low },
    { phase: `${low} → ${high}`, seconds: 60, rate: (t: number) => low + ((high - low) * t) / 60 },
    { phase: `${high} req/s`, seconds: 60, rate: () => high },
    { phase: `${high} → ${low}`, seconds: 60, rate: (t: number) => high - ((high - low) * t) / 60 },
    { phase: `${low} req/s again`, seconds: o.ramp.stabilizationSeconds + 60, rate: () => low },
  ];
  const starts: number[] = [];
  let total = 0;
  for (const p of phases) {
    starts.push(total);
    total += p.seconds;
  }
  const rateAt = (t: number) => {
    const i = starts.findLastIndex((s) => s <= t);
    const p = phases[Math.max(0, i)];
    return p ? p.rate(t - (starts[Math.max(0, i)] ?? 0)) : low;
  };
  await scale(state, 2);
  // From quiet: the metric's window must not hold the backlog of whatever ran before.
  const quietBy = Date.now() + 60_000;
  while ((await supervisorStatus(state)).metric > 0.05 && Date.now() < quietBy) await sleep(1000);
  const policy = await autoscale(state, {
    enabled: true,
    min: 2,
    max: o.ramp.max,
    target: o.ramp.target,
    stabilizationSeconds: o.ramp.stabilizationSeconds,
    periodSeconds: 5,
  });
  o.log(`ramp: ${phases.map((p) => `${p.phase} for ${p.seconds} s`).join(', ')}; policy ${JSON.stringify(policy)}`);
  const servers: number[] = [];
  const metric: number[] = [];
  const asked: number[] = [];
  const started = Date.now();
  const sampler = setInterval(() => {
    const second = Math.floor((Date.now() - started) / 1000);
    asked[second] = Math.round(rateAt(second));
    void supervisorStatus(state).then((s) => {
      servers[second] = s.webServers.length;
      metric[second] = Math.round(s.metric * 100) / 100;
    });
  }, 1000);
  const ledger = new Ledger();
  const histograms = phases.map(() => new LatencyHistogram());
  let result: Awaited<ReturnType<typeof openLoop>>;
  try {
    result = await openLoop({
      origin: state.publicUrl,
      rate: high,
      seconds: total,
      connections: 256,
      next: await buildScenario(o.scenario, manifest, ledger),
      rateAt,
      onAnswer: (t, ms) =>
        histograms[
          Math.max(
            0,
            starts.findLastIndex((s) => s <= t),
          )
        ]?.record(ms * 1000),
    });
  } finally {
    clearInterval(sampler);
  }
  await autoscale(state, { enabled: false });
  const verified = await verifyLedger(ledger, manifest, state.publicUrl);
  const out = path.join(o.out, 'ramp');
  const seconds = result.timeline.map((p) => p.t);
  const at = (xs: number[]) => seconds.map((t) => xs[t] ?? null);
  await writeReports(out, {
    ...loadReport(
      {
        scenario: `${o.scenario}: autoscaler ramp ${low} → ${high} → ${low} req/s`,
        target: state.publicUrl,
        rate: high,
        durationSeconds: total,
        connections: 256,
      },
      result,
      ledger.entries.length,
    ),
    charts: [
      { title: 'web servers (the autoscaler)', series: { servers: at(servers) } },
      {
        title: `requests in flight per server (target ${o.ramp.target}) and the rate asked (req/s ÷ 100)`,
        series: { 'in flight per server': at(metric), 'rate asked ÷ 100': at(asked.map((r) => r / 100)) },
      },
    ],
  });
  const seen = (from: number, to: number) => [...new Set(servers.slice(from, to).filter((x) => x !== undefined))];
  return {
    out,
    policy,
    sent: result.sent,
    failed: result.sent - result.completed,
    lostWrites: verified.lost.length,
    phases: phases.map((p, i) => ({
      phase: p.phase,
      from: starts[i] ?? 0,
      to: (starts[i] ?? 0) + p.seconds,
      p99: histograms[i]?.count ? (histograms[i]?.summary().p99 ?? 0) : 0,
      servers: seen(starts[i] ?? 0, (starts[i] ?? 0) + p.seconds).join(', '),
    })),
    maxServers: Math.max(...servers.filter((x) => x !== undefined)),
    endServers: servers.filter((x) => x !== undefined).at(-1) ?? 0,
  };
}

/** Open-loop load at a steady rate; a rolling deploy of this checkout starts after a fifth of it. */
async function deploy(state: ClusterState, manifest: SeedManifest, o: StatelessBenchOptions): Promise<DeployResult> {
  await scale(state, 2);
  const ledger = new Ledger();
  const phase = { before: new LatencyHistogram(), during: new LatencyHistogram(), after: new LatencyHistogram() };
  let deployFrom = Number.POSITIVE_INFINITY;
  let deployTo = Number.POSITIVE_INFINITY;
  const started = Date.now();
  const load = openLoop({
    origin: state.publicUrl,
    rate: o.deploy.rate,
    seconds: o.deploy.seconds,
    connections: 128,
    next: await buildScenario(o.scenario, manifest, ledger),
    onAnswer: (t, ms) => (t < deployFrom ? phase.before : t < deployTo ? phase.during : phase.after).record(ms * 1000),
  });
  await new Promise((r) => setTimeout(r, (o.deploy.seconds * 1000) / 5));
  deployFrom = (Date.now() - started) / 1000;
  const answer = await callSupervisor<{ replaced?: unknown[]; error?: string }>(state, 'POST', '/deploy', {
    checkout: projectRoot,
  });
  deployTo = (Date.now() - started) / 1000;
  if (answer.status !== 200) throw new Error(`deploy: ${answer.body.error}`);
  const result = await load;
  const verified = await verifyLedger(ledger, manifest, state.publicUrl);
  o.log(`deploy: ${deployTo - deployFrom} s, ${result.sent - result.completed} failed`);
  return {
    rate: o.deploy.rate,
    sent: result.sent,
    failed: result.sent - result.completed,
    lostWrites: verified.lost.length,
    deploySeconds: Math.round((deployTo - deployFrom) * 10) / 10,
    p99Before: phase.before.summary().p99,
    p99During: phase.during.summary().p99,
    p99After: phase.after.count ? phase.after.summary().p99 : 0,
    replaced: answer.body.replaced?.length ?? 0,
  };
}

export async function benchStateless(o: StatelessBenchOptions) {
  o.log('starting stateless');
  const target = await startPreset('stateless', { name: 'bench-stateless' });
  const { state } = target;
  try {
    await autoscale(state, { enabled: false });
    const manifest = await seed({ target: state.publicUrl, users: o.users, photos: o.photos, follows: 50, seed: 1 });
    const result: {
      machine: string;
      date: string;
      capacity?: PresetRow[];
      ramp?: RampResult;
      deploy?: DeployResult;
    } = { machine: machine(), date: new Date().toISOString() };
    if (o.parts.includes('capacity')) result.capacity = await capacity(state, manifest, o);
    if (o.parts.includes('ramp')) result.ramp = await ramp(state, manifest, o);
    if (o.parts.includes('deploy')) result.deploy = await deploy(state, manifest, o);
    await mkdir(o.out, { recursive: true });
    await writeFile(path.join(o.out, 'stateless.json'), `${JSON.stringify(result, null, 2)}\n`);
    return result;
  } finally {
    await target.stop();
  }
}
