import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SingleBar } from 'cli-progress';
import { Ledger, type VerifyReport, verifyLedger } from './ledger.ts';
import { defaultRetry, type LoadResult, openLoop, type RetryPolicy } from './load.ts';
import { type BenchReport, loadReport, writeReports } from './report.ts';
import { buildScenario, type ScenarioName } from './scenarios.ts';
import type { SeedManifest } from './seed.ts';
import { sweep } from './sweep.ts';

export interface BenchOptions {
  target: string;
  scenario: ScenarioName;
  rate: number;
  seconds: number;
  connections: number;
  out: string;
  manifest: SeedManifest;
  /** Raise the rate step by step until p99 passes this bound (ms); report the highest rate that held. */
  sweepP99Ms?: number;
  progress?: boolean;
  log?: (line: string) => void;
  /** Writes with an Idempotency-Key sent again after a reset or a 503 (default: `defaultRetry`); false: never. */
  retry?: RetryPolicy | false;
  /** Seconds of the same load before each measured run, not counted (see `openLoop`'s `warmUpSeconds`). */
  warmUpSeconds?: number;
  /** Called around each sweep step (or the one run), e.g. to read the servers' metrics over it. */
  step?: { before(rate: number): Promise<void>; after(rate: number): Promise<void> };
}

export const manifestFile = (out: string) => path.join(out, 'manifest.json');
export const ledgerFile = (out: string) => path.join(out, 'ledger.jsonl');

/** "30s", "2m", "45" → seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new Error(`not a duration: ${text} (try 30s or 2m)`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n;
}

async function measure(opts: BenchOptions, rate: number, ledger: Ledger): Promise<LoadResult> {
  const next = await buildScenario(opts.scenario, opts.manifest, ledger);
  await opts.step?.before(rate);
  const bar = opts.progress
    ? new SingleBar({ format: `${opts.scenario} @ ${rate}/s [{bar}] {percentage}% | {value}/{total} | {eta}s left` })
    : undefined;
  bar?.start(Math.floor(rate * (opts.seconds + (opts.warmUpSeconds ?? 0))), 0);
  try {
    return await openLoop({
      origin: opts.target,
      rate,
      seconds: opts.seconds,
      warmUpSeconds: opts.warmUpSeconds,
      connections: opts.connections,
      next,
      retry: opts.retry === false ? undefined : (opts.retry ?? defaultRetry),
      onProgress: bar ? (done) => bar.update(done) : undefined,
    });
  } finally {
    bar?.stop();
    await opts.step?.after(rate);
  }
}

/**
 * One open-loop run (or a sweep of them) of a scenario against a running
 * scaleout; writes report.json, summary.md, report.html, the manifest and the
 * ledger of acknowledged writes to `out`.
 */
export async function runBench(opts: BenchOptions): Promise<BenchReport> {
  const ledger = new Ledger();
  let result: LoadResult;
  let rate = opts.rate;
  let sweep_: BenchReport['sweep'];
  let highest: number | undefined;
  if (opts.sweepP99Ms) {
    const found = await sweep(opts.rate, opts.sweepP99Ms, (r) => measure(opts, r, ledger), opts.log);
    sweep_ = found.steps;
    highest = found.highest;
    result = found.atHighest ?? (await measure(opts, opts.rate, ledger));
    rate = highest ?? opts.rate;
  } else {
    result = await measure(opts, rate, ledger);
  }
  const report: BenchReport = {
    ...loadReport(
      {
        scenario: opts.scenario,
        target: opts.target,
        rate,
        durationSeconds: opts.seconds,
        connections: opts.connections,
      },
      result,
      ledger.entries.length,
    ),
    sweep: sweep_,
    highestSustainableRate: sweep_ ? highest : undefined,
  };
  await writeReports(opts.out, report);
  await writeFile(manifestFile(opts.out), JSON.stringify(opts.manifest, null, 2));
  await ledger.save(ledgerFile(opts.out));
  return report;
}

/** Checks the ledger of a finished run (in `out`) against the server. */
export async function verifyRun(out: string, target?: string): Promise<VerifyReport> {
  const manifest = JSON.parse(await readFile(manifestFile(out), 'utf8')) as SeedManifest;
  const ledger = await Ledger.load(ledgerFile(out));
  return verifyLedger(ledger, manifest, target ?? manifest.target);
}
