import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { raiseLoadGeneratorPriority } from '../bench/load.ts';
import { parseDuration, runBench, verifyRun } from '../bench/run.ts';
import { type ScenarioName, scenarioNames } from '../bench/scenarios.ts';
import type { SeedManifest } from '../bench/seed.ts';

export const defaultManifest = '.scaleout/manifest.json';
const benchRoot = 'bench-out';
const latestFile = path.join(benchRoot, 'latest');

interface BenchFlags {
  target?: string;
  scenario: string;
  rate: string;
  duration: string;
  warmUp: string;
  connections: string;
  out?: string;
  manifest: string;
  sweep?: boolean;
  p99: string;
  verify?: boolean;
  progress: boolean;
  retry: boolean;
}

async function latestRun(): Promise<string> {
  if (!existsSync(latestFile)) throw new Error('no bench run yet: run "scaleout bench" first, or pass --out');
  return (await readFile(latestFile, 'utf8')).trim();
}

async function printVerify(out: string, target?: string): Promise<void> {
  const report = await verifyRun(out, target);
  process.stdout.write(
    `verified ${report.checked} acknowledged writes in ${out}: ${report.lost.length} lost, ${report.duplicated.length} duplicated, ${report.unknown.length} could not be checked\n`,
  );
  for (const e of report.lost.slice(0, 20)) process.stdout.write(`  lost: ${JSON.stringify(e)}\n`);
  for (const e of report.duplicated.slice(0, 20)) process.stdout.write(`  duplicated: ${JSON.stringify(e)}\n`);
  if (report.lost.length || report.duplicated.length || report.unknown.length) process.exitCode = 2;
}

/** `scaleout bench` (open-loop load with scenarios and reports) and `scaleout verify` (the write ledger). */
export function registerLoadCommands(program: Command): Command {
  const bench = program
    .command('bench')
    .description(
      'Open-loop load against a running scaleout: fixed arrival rate, latency from the scheduled time, reports',
    )
    .option('--target <url>', 'base URL (default: the seeded one)')
    .option('--scenario <name>', scenarioNames.join(' | '), 'mixed')
    .option('--rate <n>', 'requests per second (the first rate with --sweep)', '50')
    .option('--duration <d>', 'e.g. 30s or 2m (per step with --sweep)', '30s')
    .option(
      '--warm-up <d>',
      'the same load first, not counted (as wrk2 calibrates): connections opened, the generator warm; 0: none',
      '5s',
    )
    .option('--connections <n>', 'connections to keep open', '64')
    .option(
      '--out <dir>',
      'where report.json, summary.md, report.html and the ledger go (default: bench-out/<scenario>-<time>)',
    )
    .option('--manifest <file>', 'the manifest "scaleout seed" wrote', defaultManifest)
    .option(
      '--sweep',
      'raise the rate ×1.5 per step until p99 passes --p99 or errors pass 1 %; report the highest that held',
    )
    .option('--p99 <ms>', 'the p99 bound of --sweep', '100')
    .option(
      '--verify',
      'send no load: check that every write acknowledged in the run in --out (default: the latest) is there',
    )
    .option('--no-progress', 'no progress bar')
    .option(
      '--no-retry',
      'never send a write again (by default one that got a reset or a 503 is, with its Idempotency-Key)',
    )
    .action(async (o: BenchFlags) => {
      if (o.verify) {
        await printVerify(o.out ?? (await latestRun()), o.target);
        return;
      }
      if (!(scenarioNames as readonly string[]).includes(o.scenario)) throw new Error(`unknown scenario ${o.scenario}`);
      if (!existsSync(o.manifest))
        throw new Error(`no manifest at ${o.manifest}: run "scaleout seed --target URL" first`);
      const manifest = JSON.parse(await readFile(o.manifest, 'utf8')) as SeedManifest;
      const priority = raiseLoadGeneratorPriority();
      if (priority !== -10)
        process.stderr.write(`the load generator runs at nice ${priority} (not root: -10 not allowed)\n`);
      const target = (o.target ?? manifest.target).replace(/\/$/, '');
      const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
      const out = o.out ?? path.join(benchRoot, `${o.scenario}-${stamp}`);
      const report = await runBench({
        target,
        scenario: o.scenario as ScenarioName,
        rate: Number(o.rate),
        seconds: parseDuration(o.duration),
        warmUpSeconds: parseDuration(o.warmUp),
        connections: Number(o.connections),
        out,
        manifest,
        sweepP99Ms: o.sweep ? Number(o.p99) : undefined,
        progress: o.progress && process.stderr.isTTY,
        retry: o.retry ? undefined : false,
        log: (l) => process.stderr.write(`${l}\n`),
      });
      await mkdir(benchRoot, { recursive: true });
      await writeFile(latestFile, out);
      const l = report.latencyMs;
      process.stdout.write(
        `${report.scenario} at ${report.rate} req/s for ${report.durationSeconds} s` +
          (report.warmUp
            ? ` (after a ${report.warmUp.seconds} s warm-up, not counted: ${report.warmUp.completed}/${report.warmUp.sent} served, served p99 ${report.warmUp.servedLatencyMs.p99} ms)`
            : '') +
          `: ${report.throughput} req/s, ` +
          `p50 ${l.p50} ms, p90 ${l.p90} ms, p99 ${l.p99} ms, p99.9 ${l.p999} ms, max ${l.max} ms; ` +
          `served: ${report.goodput} req/s while sending, p50 ${report.servedLatencyMs?.p50} ms, p99 ${report.servedLatencyMs?.p99} ms; ` +
          `generator lag p99 ${report.generatorLagMs?.p99} ms; ` +
          `errors ${JSON.stringify(report.errors)}; ${report.retries ?? 0} writes sent again (${report.retriesRefused ?? 0} refused by the retry budget); ${report.writesAcknowledged} writes acknowledged\n` +
          (report.sweep
            ? `highest sustainable rate (p99 ≤ ${o.p99} ms): ${report.highestSustainableRate ?? 'none'} req/s\n`
            : '') +
          `reports: ${out}/report.json, summary.md, report.html\n`,
      );
    });

  program
    .command('verify')
    .description('Check that every write a bench run saw acknowledged is present, once')
    .option('--out <dir>', 'the run directory (default: the latest run)')
    .option('--target <url>', 'base URL (default: the seeded one)')
    .action(async (o: { out?: string; target?: string }) => {
      await printVerify(o.out ?? (await latestRun()), o.target);
    });
  return bench;
}
