import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { allProcesses, type PresetName, processesOf, type Topology, webMetrics } from '../cluster/topology/index.ts';
import { openLoop } from './load.ts';
import type { BenchReport } from './report.ts';
import { runBench, verifyRun } from './run.ts';
import type { ScenarioName } from './scenarios.ts';
import { seed } from './seed.ts';
import { sweep } from './sweep.ts';
import { startHello, startPreset } from './targets.ts';

const _root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface PresetRow {
  name: string;
  highestRate: number | null;
  p99AtHighest: number | null;
  steps: { rate: number; p99: number; errors: number; sustainable: boolean }[];
  acknowledgedWrites?: number;
  lostWrites?: number;
  duplicatedWrites?: number;
  /** At the highest rate that held: database queries per feed read, over every web server. */
  queriesPerFeedRead?: number | null;
  /** At the highest rate that held: the largest resident set of a web server (MB), sampled each second. */
  webRssMb?: number | null;
  /** That server's V8 heap (total) and external memory there (MB): the rest of its RSS is code and native libraries. */
  heapMb?: number | null;
  externalMb?: number | null;
}

export interface PresetBenchOptions {
  p99Ms: number;
  stepSeconds: number;
  startRate: number;
  users: number;
  photos: number;
  out: string;
  /** Presets to sweep, in order (default single, db, lb, cache). */
  presets?: PresetName[];
  /** Scenarios to sweep on each preset (default mixed). */
  scenarios?: ScenarioName[];
  /** Where the load enters: the site's public URL (an edge where there is one), or its load balancer. */
  via?: 'public' | 'balancer';
  log: (line: string) => void;
}

interface WebSample {
  feedQueries: number;
  feedReads: number;
  rssBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
}

/** Reads what the bench reports from each web server's private /metrics. */
async function sampleWebServers(topology: Topology): Promise<WebSample[]> {
  const webs = allProcesses(topology).filter((p) => p.kind === 'web');
  return Promise.all(
    webs.map(async (w) => {
      const { host, port } = webMetrics(w as Extract<typeof w, { kind: 'web' }>);
      const text = await fetch(`http://${host}:${port}/metrics`)
        .then((r) => r.text())
        .catch(() => '');
      const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
      return {
        feedQueries: value(/^scaleout_db_queries_per_request_sum\{[^}]*route="\/api\/v1\/feed"[^}]*\} (\S+)/m),
        feedReads: value(/^scaleout_db_queries_per_request_count\{[^}]*route="\/api\/v1\/feed"[^}]*\} (\S+)/m),
        rssBytes: value(/^process_resident_memory_bytes(?:\{[^}]*\})? (\S+)/m),
        heapTotalBytes: value(/^nodejs_heap_size_total_bytes(?:\{[^}]*\})? (\S+)/m),
        externalBytes: value(/^nodejs_external_memory_bytes(?:\{[^}]*\})? (\S+)/m),
      };
    }),
  );
}

/**
 * Watches the web servers over each sweep step: queries per feed read (the
 * counters' difference across the step) and the largest RSS seen (sampled every second).
 */
function stepWatcher(topology: Topology) {
  const perStep = new Map<
    number,
    { queriesPerFeedRead: number | null; webRssMb: number; heapMb: number; externalMb: number }
  >();
  let before: WebSample[] = [];
  let peakRss = 0;
  // The V8 heap and external memory of the server whose RSS peaked, at that sample.
  let atPeak = { heap: 0, external: 0 };
  const track = (xs: WebSample[]) => {
    for (const x of xs) {
      if (x.rssBytes >= peakRss) {
        peakRss = x.rssBytes;
        atPeak = { heap: x.heapTotalBytes, external: x.externalBytes };
      }
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const sum = (xs: WebSample[], k: keyof WebSample) => xs.reduce((a, x) => a + x[k], 0);
  return {
    perStep,
    hooks: {
      async before() {
        before = await sampleWebServers(topology);
        peakRss = 0;
        track(before);
        timer = setInterval(() => {
          void sampleWebServers(topology).then(track);
        }, 1000);
      },
      async after(rate: number) {
        clearInterval(timer);
        const after = await sampleWebServers(topology);
        track(after);
        const reads = sum(after, 'feedReads') - sum(before, 'feedReads');
        const queries = sum(after, 'feedQueries') - sum(before, 'feedQueries');
        perStep.set(rate, {
          queriesPerFeedRead: reads > 0 ? Math.round((queries / reads) * 1000) / 1000 : null,
          webRssMb: Math.round(peakRss / 1e5) / 10,
          heapMb: Math.round(atPeak.heap / 1e5) / 10,
          externalMb: Math.round(atPeak.external / 1e5) / 10,
        });
      },
    },
  };
}

/** A row of the table from a sweep's report, with its ledger (in `out`) verified. */
export async function sweepRow(name: string, report: BenchReport, out: string): Promise<PresetRow> {
  const verified = await verifyRun(out);
  const highest = report.sweep?.filter((s) => s.sustainable).at(-1);
  return {
    name,
    highestRate: report.highestSustainableRate ?? null,
    p99AtHighest: highest?.p99 ?? null,
    steps: (report.sweep ?? []).map((s) => ({
      rate: s.rate,
      p99: s.p99,
      errors: s.errors,
      sustainable: s.sustainable,
    })),
    acknowledgedWrites: verified.checked,
    lostWrites: verified.lost.length,
    duplicatedWrites: verified.duplicated.length,
  };
}

/** The hello-world's sweep: same bound, same step rule, a plain GET. */
export async function helloSweep(
  o: Pick<PresetBenchOptions, 'startRate' | 'stepSeconds' | 'p99Ms' | 'log'>,
): Promise<PresetRow> {
  const hello = await startHello();
  try {
    const origin = hello.origin;
    const row: PresetRow = { name: 'Fastify hello-world (baseline)', highestRate: null, p99AtHighest: null, steps: [] };
    const found = await sweep(
      o.startRate * 10,
      o.p99Ms,
      (rate) => openLoop({ origin, rate, seconds: o.stepSeconds, connections: 64, next: () => ({ path: '/' }) }),
      (line) => o.log(`hello-world ${line}`),
    );
    row.steps = found.steps.map(({ rate, p99, errors, sustainable }) => ({ rate, p99, errors, sustainable }));
    row.highestRate = found.highest ?? null;
    row.p99AtHighest = found.atHighest?.latencyMs.p99 ?? null;
    return row;
  } finally {
    await hello.stop();
  }
}

/**
 * The highest rate of the `mixed` scenario each preset sustains with p99
 * under the bound, found by sweeping, beside a hello-world swept the same way
 * in the same run. Each preset's ledger is verified afterwards.
 */
export async function benchPresets(o: PresetBenchOptions): Promise<PresetRow[]> {
  const rows: PresetRow[] = [await helloSweep(o)];
  for (const preset of o.presets ?? (['single', 'db', 'lb', 'cache'] as PresetName[])) {
    o.log(`starting ${preset}`);
    const target = await startPreset(preset, { name: `sweep-${preset}` });
    const { state } = target;
    const [lb] = o.via === 'balancer' ? processesOf(state.topology, 'loadBalancer') : [];
    const origin = lb ? `http://${lb.listen.host}:${lb.listen.port}` : target.origin;
    try {
      const manifest = await seed({ target: origin, users: o.users, photos: o.photos, follows: 50, seed: 1 });
      for (const scenario of o.scenarios ?? ['mixed']) {
        const name = (o.scenarios?.length ?? 1) > 1 ? `${preset} (${scenario})` : preset;
        const out = path.join(o.out, `${preset}-${scenario}`);
        const watcher = stepWatcher(state.topology);
        const report = await runBench({
          target: origin,
          scenario,
          rate: o.startRate,
          seconds: o.stepSeconds,
          connections: 64,
          out,
          manifest,
          sweepP99Ms: o.p99Ms,
          step: watcher.hooks,
          log: (l) => o.log(`${name}: ${l}`),
        });
        const row = await sweepRow(name, report, out);
        const highest = report.sweep?.filter((s) => s.sustainable).at(-1);
        const atHighest = highest ? watcher.perStep.get(highest.rate) : undefined;
        rows.push({
          ...row,
          queriesPerFeedRead: atHighest?.queriesPerFeedRead ?? null,
          webRssMb: atHighest?.webRssMb ?? null,
          heapMb: atHighest?.heapMb ?? null,
          externalMb: atHighest?.externalMb ?? null,
        });
      }
    } finally {
      await target.stop();
    }
  }
  return rows;
}

export function presetTable(rows: PresetRow[], p99Ms: number): string {
  return [
    `| target | highest rate with p99 ≤ ${p99Ms} ms (req/s) | p99 there (ms) | DB queries per feed read there | web-server RSS there (MB, max) | its V8 heap / external (MB) | rates tried (p99 ms) | acknowledged writes | lost | duplicated |`,
    '|---|---:|---:|---:|---:|---:|---|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.highestRate ?? 'none'} | ${r.p99AtHighest ?? '-'} | ${r.queriesPerFeedRead ?? '-'} | ${r.webRssMb ?? '-'} | ${r.heapMb ?? '-'} / ${r.externalMb ?? '-'} | ${r.steps.map((s) => `${s.rate} (${s.p99}${s.errors ? `, ${s.errors} err` : ''})`).join(', ')} | ${r.acknowledgedWrites ?? '-'} | ${r.lostWrites ?? '-'} | ${r.duplicatedWrites ?? '-'} |`,
    ),
  ].join('\n');
}
