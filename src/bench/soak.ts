import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { ClusterState } from '../cluster/run/index.ts';
import { callSupervisor } from '../cluster/supervisor/client.ts';
import { cpuSecondsByProcess, hostCpuSeconds } from './cpu.ts';
import { Ledger, verifyLedger } from './ledger.ts';
import { defaultRetry, LatencyHistogram, openLoop, raiseLoadGeneratorPriority } from './load.ts';
import { doorAdmission } from './overload.ts';
import { loadReport, writeReports } from './report.ts';
import { buildScenario, type ScenarioName } from './scenarios.ts';
import { seed } from './seed.ts';
import { describeStalls, type StallMinute, startStallTrace } from './stall-trace.ts';
import { errorCount, sweepRule } from './sweep.ts';
import { startPreset } from './targets.ts';

export interface SoakOptions {
  out: string;
  minutes: number;
  /** The share of the sustainable rate to hold (0.7). */
  share: number;
  /** The sustainable rate, when known; else a sweep from `startRate` finds it. */
  sustainableRate?: number;
  startRate: number;
  /** How long the sweep holds each rate (60 s: a rate that holds for 10 s may not hold for a minute). */
  stepSeconds: number;
  p99Ms: number;
  /** The first minutes, the baseline of RSS and p99 (5). */
  baselineMinutes: number;
  users: number;
  photos: number;
  /** `steady` (default): `mixed` whose follows are undone after a while, so the graph does not fill up. */
  scenario: ScenarioName;
  /** Admission control by the queue's depth at the door (overload.ts' doorAdmission), not the 25 ms timeout. */
  door?: boolean;
  log: (line: string) => void;
}

export interface SoakMinute {
  minute: number;
  requests: number;
  errors: number;
  p99: number;
  /** Each process's resident set (MB) at the end of the minute. */
  rssMb: Record<string, number>;
  /** Each process's CPU over the minute (its descendants included), in % of one core. */
  cpuPct?: Record<string, number>;
  /** The machine's CPU over the minute, in % of all its cores: busy, and waiting for I/O. */
  host?: { busyPct: number; iowaitPct: number; stealPct?: number };
  /**
   * The load generator itself over the minute: its CPU (% of one core) and its event loop's p99 delay.
   * Latency counts from each request's due time, so a generator that lags adds its lag to what it measures.
   */
  loadGenerator?: { cpuPct: number; loopDelayP99Ms: number };
  /** The primary's stalls over the minute, sampled every 100 ms (what its busy backends waited for). */
  stalls?: StallMinute;
}

export interface SoakResult {
  rate: number;
  sustainableRate: number;
  /** The sweep that found the sustainable rate (none when it was given). */
  sweep?: { rate: number; seconds: number; p99: number; errors: number; held: boolean }[];
  minutes: SoakMinute[];
  /**
   * Per process: its highest RSS in the baseline minutes and after them, its last, and the growth
   * (peak after over peak before: one sample just after a collection is no baseline).
   */
  rss: {
    process: string;
    baselinePeakMb: number;
    peakAfterMb: number;
    atEndMb: number;
    growth: number;
    keepsData: boolean;
    pass: boolean;
  }[];
  p99: { baseline: number; worst: number; worstMinute: number; ratio: number; pass: boolean };
  /** Requests never served (after a shed one was sent again as its Retry-After asked), and those sent again. */
  errors: { total: number; pass: boolean };
  sentAgain: number;
  /** Retries the client's retry budget refused (their requests count as errors). */
  retriesRefused: number;
  lost: number;
  duplicated: number;
  pass: boolean;
}

async function rssMb(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
    return Number.isFinite(kb) ? Math.round(kb / 102.4) / 10 : null;
  } catch {
    return null;
  }
}

/**
 * Processes whose memory grows with the data they keep (keys, samples, rows):
 * their growth over a soak is shown, but a leak is judged on the others.
 * (A Patroni node's entry is Patroni itself, which keeps no data.)
 */
const keepsData = new Set(['postgres', 'redis', 'etcd', 'prometheus']);

/** Every process of the topology by name (Patroni's PostgreSQL is its own process: its postmaster's PID file). */
async function processRss(state: ClusterState): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const p of state.processes) {
    const mb = await rssMb(p.pid);
    if (mb !== null) out[p.name] = mb;
  }
  return out;
}

/** CPU counters at one moment, to take a minute's use as the difference of two. */
interface CpuMark {
  at: number;
  byProcess: Record<string, number>;
  host: Awaited<ReturnType<typeof hostCpuSeconds>>;
}

const markCpu = async (state: ClusterState): Promise<CpuMark> => ({
  at: Date.now(),
  byProcess: await cpuSecondsByProcess(state.processes),
  host: await hostCpuSeconds(),
});

/** What each process and the machine used between two marks. */
function cpuBetween(a: CpuMark, b: CpuMark): Pick<SoakMinute, 'cpuPct' | 'host'> {
  const seconds = Math.max(0.001, (b.at - a.at) / 1000);
  const pct = (x: number) => Math.round(x * 1000) / 10;
  const cpuPct: Record<string, number> = {};
  for (const [name, used] of Object.entries(b.byProcess))
    cpuPct[name] = pct((used - (a.byProcess[name] ?? used)) / seconds);
  const total = Math.max(0.001, b.host.total - a.host.total);
  return {
    cpuPct,
    host: {
      busyPct: pct((b.host.busy - a.host.busy) / total),
      iowaitPct: pct((b.host.iowait - a.host.iowait) / total),
      stealPct: pct((b.host.steal - a.host.steal) / total),
    },
  };
}

/** This process's CPU and event-loop delay since the last call of `minute()`. */
function watchLoadGenerator() {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let cpu = process.cpuUsage();
  let at = Date.now();
  return {
    minute(): NonNullable<SoakMinute['loadGenerator']> {
      const used = process.cpuUsage(cpu);
      const seconds = Math.max(0.001, (Date.now() - at) / 1000);
      const out = {
        cpuPct: Math.round(((used.user + used.system) / 1e6 / seconds) * 1000) / 10,
        loopDelayP99Ms: Math.round(delay.percentile(99) / 1e5) / 10,
      };
      delay.reset();
      cpu = process.cpuUsage();
      at = Date.now();
      return out;
    },
    stop: () => delay.disable(),
  };
}

/** The `n` processes that used the most CPU in a minute: "web-1 71 %, pg-1 40 %". */
const busiest = (m: SoakMinute, n = 3): string =>
  Object.entries(m.cpuPct ?? {})
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, pct]) => `${name} ${Math.round(pct)} %`)
    .join(', ');

/** The highest rate that holds (p99 ≤ bound, ≤ 1 % errors), ×1.2 a step of `stepSeconds`, after a warm-up. */
async function sustainable(
  origin: string,
  next: Awaited<ReturnType<typeof buildScenario>>,
  o: SoakOptions,
): Promise<{ held: number; steps: NonNullable<SoakResult['sweep']> }> {
  await openLoop({ origin, rate: o.startRate, seconds: 10, connections: 64, next });
  let held = 0;
  const steps: NonNullable<SoakResult['sweep']> = [];
  for (let rate = o.startRate, step = 0; step < sweepRule.maxSteps; step++, rate = Math.round(rate * 1.2)) {
    const r = await openLoop({ origin, rate, seconds: o.stepSeconds, connections: 256, next });
    const errors = errorCount(r);
    const ok = r.latencyMs.p99 <= o.p99Ms && errors <= r.sent * sweepRule.maxErrorShare;
    o.log(`sweep ${rate}/s: p99 ${r.latencyMs.p99} ms, ${errors} errors → ${ok ? 'holds' : 'too much'}`);
    steps.push({ rate, seconds: o.stepSeconds, p99: r.latencyMs.p99, errors, held: ok });
    if (!ok) break;
    held = rate;
  }
  if (held === 0) throw new Error(`not even ${o.startRate} req/s holds: lower --start-rate`);
  return { held, steps };
}

/**
 * A soak on `stateless` (its autoscaler off, so the processes stay the same
 * ones): `mixed` at a share of the sustainable rate for `minutes`, each
 * minute's requests, errors and p99, and every process's RSS at each
 * minute's end. It passes when no process's highest RSS after the baseline
 * minutes is more than 5 % over its highest in them (a garbage collector's
 * saw-tooth makes one sample no baseline), no minute's p99 passed 1.5× the
 * baseline minutes' p99,
 * and nothing failed.
 */
export async function benchSoak(o: SoakOptions): Promise<SoakResult> {
  o.log(`the load generator runs at nice ${raiseLoadGeneratorPriority()}`);
  const target = await startPreset('stateless', { name: 'soak', ...(o.door ? doorAdmission : {}) });
  try {
    const { state } = target;
    await callSupervisor(state, 'POST', '/autoscale', { enabled: false });
    const manifest = await seed({ target: state.publicUrl, users: o.users, photos: o.photos, follows: 50, seed: 1 });
    const warm = await buildScenario(o.scenario, manifest, new Ledger(), 3);
    const found = o.sustainableRate ? undefined : await sustainable(state.publicUrl, warm, o);
    const sustainableRate = o.sustainableRate ?? found?.held ?? 0;
    const rate = Math.round(sustainableRate * o.share);
    o.log(`sustainable ${sustainableRate} req/s: soaking at ${rate} req/s for ${o.minutes} min`);
    const ledger = new Ledger();
    const next = await buildScenario(o.scenario, manifest, ledger, 5);
    const perMinute = Array.from({ length: o.minutes }, () => ({ h: new LatencyHistogram(), errors: 0 }));
    const minutes: SoakMinute[] = [];
    const trace = startStallTrace(state);
    const started = Date.now();
    const stallsOf = (minute: number) =>
      trace.between(started - trace.started + (minute - 1) * 60_000, started - trace.started + minute * 60_000);
    let cpuMark = await markCpu(state);
    const sampleCpu = async () => {
      const now = await markCpu(state);
      const used = cpuBetween(cpuMark, now);
      cpuMark = now;
      return used;
    };
    const generator = watchLoadGenerator();
    let sampling: Promise<void> = Promise.resolve();
    const sampler = setInterval(() => {
      const minute = Math.round((Date.now() - started) / 60_000);
      const loadGenerator = generator.minute();
      sampling = Promise.all([processRss(state), sampleCpu()]).then(([rss, cpu]) => {
        const m = perMinute[minute - 1];
        if (!m) return;
        const s = m.h.summary();
        const sample: SoakMinute = {
          minute,
          requests: m.h.count,
          errors: m.errors,
          p99: s.p99,
          rssMb: rss,
          ...cpu,
          loadGenerator,
          stalls: stallsOf(minute),
        };
        minutes.push(sample);
        o.log(
          `minute ${minute}: ${m.h.count} requests, ${m.errors} errors, p99 ${s.p99} ms; CPU ${cpu.host?.busyPct} % (iowait ${cpu.host?.iowaitPct} %, stolen by the hypervisor ${cpu.host?.stealPct} %): ${busiest(sample)}; load generator ${loadGenerator.cpuPct} %, its loop's p99 delay ${loadGenerator.loopDelayP99Ms} ms; the primary: ${describeStalls(sample.stalls as StallMinute)}`,
        );
      });
    }, 60_000);
    let result: Awaited<ReturnType<typeof openLoop>>;
    try {
      result = await openLoop({
        origin: state.publicUrl,
        rate,
        seconds: o.minutes * 60,
        connections: 256,
        next,
        // As a well-behaved client: keyed writes and reads shed with Retry-After are sent again after it.
        retry: { ...defaultRetry, reads: true },
        onAnswer: (due, ms, error) => {
          const m = perMinute[Math.min(o.minutes - 1, Math.floor(due / 60))];
          m?.h.record(ms * 1000);
          if (error && m) m.errors++;
        },
      });
    } finally {
      clearInterval(sampler);
      generator.stop();
    }
    await sampling;
    await mkdir(path.join(o.out, 'soak'), { recursive: true });
    await trace.stop(path.join(o.out, 'soak', 'stalls.jsonl'));
    // The last minute's sample, if the timer did not take it.
    if (!minutes.some((m) => m.minute === o.minutes)) {
      const m = perMinute[o.minutes - 1];
      if (m)
        minutes.push({
          minute: o.minutes,
          requests: m.h.count,
          errors: m.errors,
          p99: m.h.summary().p99,
          rssMb: await processRss(state),
          ...(await sampleCpu()),
          loadGenerator: generator.minute(),
          stalls: stallsOf(o.minutes),
        });
    }
    minutes.sort((a, b) => a.minute - b.minute);
    const verified = await verifyLedger(ledger, manifest, state.publicUrl);
    const base = minutes.filter((m) => m.minute <= o.baselineMinutes);
    const after = minutes.filter((m) => m.minute > o.baselineMinutes);
    const atEnd = minutes.at(-1)?.rssMb ?? {};
    const peak = (ms: SoakMinute[], p: string) => Math.max(...ms.map((m) => m.rssMb[p] ?? 0));
    const rss = Object.keys(base.at(-1)?.rssMb ?? {})
      .filter((p) => atEnd[p] !== undefined)
      .map((p) => {
        const b = peak(base, p);
        const a = peak(after, p);
        const growth = Math.round(((a - b) / b) * 1000) / 1000;
        const data = keepsData.has(state.processes.find((q) => q.name === p)?.kind ?? '');
        const row = { process: p, baselinePeakMb: b, peakAfterMb: a, atEndMb: atEnd[p] as number, growth };
        return { ...row, keepsData: data, pass: data || growth <= 0.05 };
      });
    const baselineP99 = Math.max(...base.map((m) => m.p99));
    const worst = after.reduce((w, m) => (m.p99 > w.p99 ? m : w), after[0] ?? { p99: 0, minute: 0 });
    const ratio = baselineP99 > 0 ? Math.round((worst.p99 / baselineP99) * 100) / 100 : 0;
    const totalErrors = errorCount(result);
    const seconds = result.timeline.map((p) => p.t);
    const minuteOf = (t: number) => minutes.find((m) => m.minute === Math.min(o.minutes, Math.floor(t / 60) + 1));
    const names = Object.keys(atEnd);
    await writeReports(path.join(o.out, 'soak'), {
      ...loadReport(
        {
          scenario: `soak: ${o.scenario} at ${rate} req/s (${Math.round(o.share * 100)} % of ${sustainableRate}) for ${o.minutes} min on stateless`,
          target: state.publicUrl,
          rate,
          durationSeconds: o.minutes * 60,
          connections: 256,
        },
        result,
        ledger.entries.length,
      ),
      charts: [
        {
          title: 'resident set per process, MB (sampled each minute)',
          series: Object.fromEntries(names.map((n) => [n, seconds.map((t) => minuteOf(t)?.rssMb[n] ?? null)])),
        },
        {
          title: "each minute's p99, ms, and its errors",
          series: {
            p99: seconds.map((t) => minuteOf(t)?.p99 ?? null),
            errors: seconds.map((t) => minuteOf(t)?.errors ?? null),
          },
        },
      ],
    });
    const soak: SoakResult = {
      rate,
      sustainableRate,
      sweep: found?.steps,
      minutes,
      rss,
      p99: { baseline: baselineP99, worst: worst.p99, worstMinute: worst.minute, ratio, pass: ratio <= 1.5 },
      errors: { total: totalErrors, pass: totalErrors === 0 },
      sentAgain: result.retries,
      retriesRefused: result.retriesRefused ?? 0,
      lost: verified.lost.length,
      duplicated: verified.duplicated.length,
      pass: false,
    };
    soak.pass = soak.rss.every((r) => r.pass) && soak.p99.pass && soak.errors.pass && soak.lost === 0;
    return soak;
  } finally {
    await target.stop();
  }
}

export function soakSummary(s: SoakResult, o: Pick<SoakOptions, 'minutes' | 'baselineMinutes' | 'scenario'>): string {
  const mark = (ok: boolean) => (ok ? 'pass' : '**fail**');
  return [
    `## Soak: \`${o.scenario}\` at ${s.rate} req/s (of ${s.sustainableRate} sustainable) for ${o.minutes} min on \`stateless\``,
    '',
    ...(s.sweep
      ? [
          `The sweep (p99 within its bound and ≤ 1 % errors, each rate held ${s.sweep[0]?.seconds ?? '–'} s): ${s.sweep.map((x) => `${x.rate}/s p99 ${x.p99} ms, ${x.errors} errors${x.held ? '' : ' (too much)'}`).join('; ')}.`,
          '',
        ]
      : []),
    `- RSS growth after the first ${o.baselineMinutes} minutes (≤ 5 % for each process that keeps no data; the data stores' growth is shown, marked "data"): ${mark(s.rss.every((r) => r.pass))}`,
    `- p99: first ${o.baselineMinutes} minutes ${s.p99.baseline} ms; worst minute after them ${s.p99.worst} ms (minute ${s.p99.worstMinute}), ${s.p99.ratio}× (≤ 1.5×): ${mark(s.p99.pass)}`,
    `- errors (requests never served; a read or keyed write shed with Retry-After is sent again after it, as a well-behaved client does): ${s.errors.total} (0): ${mark(s.errors.pass)}; sent again ${s.sentAgain ?? 0}, refused by the client's retry budget ${s.retriesRefused ?? 0}; acknowledged writes lost ${s.lost}, duplicated ${s.duplicated}`,
    `- verdict: ${s.pass ? 'pass' : '**fail**'}`,
    '',
    `| process | peak RSS, minutes 1–${o.baselineMinutes}, MB | peak after, MB | at the end, MB | growth (peak to peak) |`,
    '|---|---:|---:|---:|---:|',
    ...s.rss.map(
      (r) =>
        `| ${r.process} | ${r.baselinePeakMb} | ${r.peakAfterMb} | ${r.atEndMb} | ${(r.growth * 100).toFixed(1)} %${r.keepsData ? ' (data)' : r.pass ? '' : ' ✗'} |`,
    ),
    '',
    '| minute | requests | errors | p99 ms | machine CPU % | iowait % | steal % | busiest processes (% of one core) | load generator CPU % / loop p99 delay ms | the primary (every 100 ms): samples with a backend waiting, the most at once, top waits; standby flush lag max; I/O stall |',
    '|---:|---:|---:|---:|---:|---:|---:|---|---:|---|',
    ...s.minutes.map(
      (m) =>
        `| ${m.minute} | ${m.requests} | ${m.errors} | ${m.p99} | ${m.host?.busyPct ?? '–'} | ${m.host?.iowaitPct ?? '–'} | ${m.host?.stealPct ?? '–'} | ${busiest(m)} | ${m.loadGenerator ? `${m.loadGenerator.cpuPct} / ${m.loadGenerator.loopDelayP99Ms}` : '–'} | ${m.stalls ? describeStalls(m.stalls) : '–'} |`,
    ),
  ].join('\n');
}
