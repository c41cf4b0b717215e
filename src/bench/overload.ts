import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ClusterState } from '../cluster/run/index.ts';
import type { PresetOptions } from '../cluster/topology/presets.ts';
import { topologySchema } from '../cluster/topology/schema.ts';
import { webMetrics } from '../cluster/topology/select.ts';
import { Ledger, verifyLedger } from './ledger.ts';
import { defaultRetry, type LoadResult, openLoop, type Percentiles, raiseLoadGeneratorPriority } from './load.ts';
import { breakdownHeader, breakdownRow, type MemoryBreakdown, memoryBreakdown } from './memory.ts';
import { loadReport, writeReports } from './report.ts';
import { buildScenario } from './scenarios.ts';
import { type SeedManifest, seed } from './seed.ts';
import { errorCount, sweepRule } from './sweep.ts';
import { startPreset } from './targets.ts';

export interface OverloadOptions {
  out: string;
  /** The overload: open loop at `rate` for `seconds` over `connections`. */
  rate: number;
  seconds: number;
  connections: number;
  /** The sustainable rate's sweep: from `startRate`, ×`growth` per step of `stepSeconds`, p99 ≤ `p99Ms`. */
  startRate: number;
  growth: number;
  stepSeconds: number;
  p99Ms: number;
  users: number;
  photos: number;
  /** With admission control, and the same `cache` topology without it (the baseline). */
  variants: ('admission' | 'door' | 'none')[];
  /** Topology options of the admission variant that differ from the defaults (to try other bounds). */
  admission?: PresetOptions;
  log: (line: string) => void;
}

export interface OverloadVariant {
  name: string;
  sustainableRate: number | null;
  sweep: { rate: number; p99: number; errors: number; held: boolean }[];
  overload: {
    rate: number;
    goodput: number;
    goodputShare: number | null;
    served: Percentiles;
    all: Percentiles;
    errors: Record<string, number>;
    retries: number;
    generatorLag?: Percentiles;
    /** What HAProxy measured for the requests it served (its log's Ta, ms). */
    balancerServed: { count: number; p50: number; p99: number; max: number };
    /** 503s by request method, from the balancer's log. */
    shedByMethod: Record<string, number>;
    /** The served requests by route, from the balancer's log: what their time was spent on. */
    servedByRoute?: Record<string, RouteTimes>;
  };
  healthyAfter: boolean;
  /** Acknowledged writes that read as missing right after the run, by kind, and 70 s later (past the cache's TTL). */
  lost: number;
  lostByKind: Record<string, number>;
  lostAfterTtl?: number;
  duplicated: number;
  /** Each web server at the end of the highest rate that held. */
  memory: { name: string; breakdown: MemoryBreakdown }[];
}

const countBy = (xs: string[]) =>
  xs.reduce<Record<string, number>>((a, x) => {
    a[x] = (a[x] ?? 0) + 1;
    return a;
  }, {});

const admissionOff: PresetOptions = { maxRequestsPerServer: 1000, queueTimeoutMs: 10_000, queueDepthPerServer: 0 };
/** Admission control by the queue's depth at the door, with a 500 ms queue timeout behind it (topology options). */
export const doorAdmission: PresetOptions = { queueDepthPerServer: 24, queueTimeoutMs: 500 };

/** The `cache` topology's web servers, each with its PID and metrics URL. */
function webProcesses(state: ClusterState) {
  return state.processes
    .filter((p) => p.kind === 'web')
    .map((p) => {
      const spec = state.topology.dataCenters.flatMap((d) => d.processes).find((s) => s.name === p.name);
      const m = spec && spec.kind === 'web' ? webMetrics(spec) : undefined;
      return { name: p.name, pid: p.pid, metricsUrl: m ? `http://${m.host}:${m.port}/metrics` : '' };
    });
}

/** A route's name in the balancer's log: its method and path with ids and query left out. */
export function routeOf(method: string, url: string): string {
  const parts = (url.split('?')[0] ?? '').split('/');
  // The segment after a collection names one of its members: a user's name, a photo's id.
  const named = parts.map((s, i) => (i > 0 && ['users', 'photos'].includes(parts[i - 1] as string) ? ':id' : s));
  return `${method} ${named.join('/')}`;
}

const percentile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0;

/** Per route of the served requests: how many, and p50/p99 of the wait in the queue (Tw), at the server (Tr), in all (Ta). */
export interface RouteTimes {
  count: number;
  queueP99: number;
  serverP50: number;
  serverP99: number;
  totalP99: number;
}

/** Served requests (2xx/3xx) and 503s in the balancer's log lines after `fromLine`. */
function balancerLog(state: ClusterState, fromLine: number) {
  const lines = readFileSync(path.join(state.runDir, 'logs', 'load-balancer.log'), 'utf8')
    .split('\n')
    .slice(fromLine);
  const served: number[] = [];
  const shedByMethod: Record<string, number> = {};
  const byRoute = new Map<string, { tw: number[]; tr: number[]; ta: number[] }>();
  for (const l of lines) {
    // A request shed at the door never reached the backend: its line names the frontend, <NOSRV>.
    const m =
      / public (?:web\/\S+|public\/<NOSRV>) (-?\d+)\/(-?\d+)\/(-?\d+)\/(-?\d+)\/(-?\d+) (\d{3}) \S+ \S+ "(\w+) (\S+)/.exec(
        l,
      );
    if (!m) continue;
    const status = Number(m[6]);
    const method = m[7] as string;
    if (status >= 200 && status < 400) {
      served.push(Number(m[5]));
      const route = routeOf(method, m[8] as string);
      const r = byRoute.get(route) ?? { tw: [], tr: [], ta: [] };
      r.tw.push(Number(m[2]));
      r.tr.push(Number(m[4]));
      r.ta.push(Number(m[5]));
      byRoute.set(route, r);
    }
    if (status === 503) shedByMethod[method] = (shedByMethod[method] ?? 0) + 1;
  }
  const sort = (xs: number[]) => xs.sort((a, b) => a - b);
  sort(served);
  const servedByRoute: Record<string, RouteTimes> = {};
  for (const [route, r] of [...byRoute].sort((a, b) => b[1].ta.length - a[1].ta.length)) {
    const [tw, tr, ta] = [sort(r.tw), sort(r.tr), sort(r.ta)];
    servedByRoute[route] = {
      count: ta.length,
      queueP99: percentile(tw, 0.99),
      serverP50: percentile(tr, 0.5),
      serverP99: percentile(tr, 0.99),
      totalP99: percentile(ta, 0.99),
    };
  }
  return {
    served: {
      count: served.length,
      p50: percentile(served, 0.5),
      p99: percentile(served, 0.99),
      max: served.at(-1) ?? 0,
    },
    shedByMethod,
    servedByRoute,
  };
}

const logLines = (state: ClusterState) =>
  readFileSync(path.join(state.runDir, 'logs', 'load-balancer.log'), 'utf8').split('\n').length - 1;

async function ready(state: ClusterState): Promise<boolean> {
  const answers = await Promise.all([
    ...state.processes
      .filter((p) => p.kind === 'web')
      .map((p) => {
        const spec = state.topology.dataCenters.flatMap((d) => d.processes).find((s) => s.name === p.name);
        const a = spec && 'listen' in spec ? spec.listen : undefined;
        return fetch(`http://${a?.host}:${a?.port}/readyz`, { signal: AbortSignal.timeout(3000) })
          .then((r) => r.status === 200)
          .catch(() => false);
      }),
    fetch(`${state.publicUrl}/readyz`, { signal: AbortSignal.timeout(3000) })
      .then((r) => r.status === 200)
      .catch(() => false),
  ]);
  return answers.every(Boolean);
}

/** The topology's own queue timeout (ms), when a variant does not set one. */
const defaultQueueTimeoutMs: number = topologySchema.shape.options.shape.queueTimeoutMs.parse(undefined);

/** The admission variant's name: its requests per server where not the default, and its queue timeout. */
function admissionName(p: PresetOptions): string {
  const perServer = p.maxRequestsPerServer ? `${p.maxRequestsPerServer} per server, ` : '';
  return `admission control (${perServer}a ${p.queueTimeoutMs ?? defaultQueueTimeoutMs} ms queue timeout)`;
}

/** One topology: seed, warm up, sweep for the sustainable rate, then the overload, then its health and ledger. */
async function runVariant(
  id: 'admission' | 'door' | 'none',
  name: string,
  preset: PresetOptions,
  webEnv: Record<string, string>,
  o: OverloadOptions,
): Promise<OverloadVariant> {
  const log = (l: string) => o.log(`${name}: ${l}`);
  const target = await startPreset('cache', { ...preset, webEnv, name: `overload-${id}` });
  try {
    const { state } = target;
    const manifest: SeedManifest = await seed({
      target: state.publicUrl,
      users: o.users,
      photos: o.photos,
      follows: 50,
      seed: 1,
    });
    const ledger = new Ledger();
    const next = await buildScenario('mixed', manifest, ledger);
    const run = (rate: number, seconds: number, connections: number) =>
      openLoop({ origin: state.publicUrl, rate, seconds, connections, next, retry: undefined });
    // Warm (JIT, caches, connection pools): not measured.
    await run(o.startRate, 10, 64);
    const sweep: OverloadVariant['sweep'] = [];
    let sustainable: number | null = null;
    let memory: OverloadVariant['memory'] = [];
    for (let rate = o.startRate, step = 0; step < sweepRule.maxSteps; step++, rate = Math.round(rate * o.growth)) {
      const r = await run(rate, o.stepSeconds, 256);
      const errors = errorCount(r);
      const held = r.latencyMs.p99 <= o.p99Ms && errors <= r.sent * sweepRule.maxErrorShare;
      sweep.push({ rate, p99: r.latencyMs.p99, errors, held });
      log(`rate ${rate}/s: p99 ${r.latencyMs.p99} ms, ${errors} errors → ${held ? 'holds' : 'too much'}`);
      if (!held) break;
      sustainable = rate;
      memory = await Promise.all(
        webProcesses(state).map(async (w) => ({ name: w.name, breakdown: await memoryBreakdown(w.pid, w.metricsUrl) })),
      );
    }
    await new Promise((r) => setTimeout(r, 5000));
    const fromLine = logLines(state);
    const overloadLedger = new Ledger();
    const overloadNext = await buildScenario('mixed', manifest, overloadLedger, 11);
    const result: LoadResult = await openLoop({
      origin: state.publicUrl,
      rate: o.rate,
      seconds: o.seconds,
      connections: o.connections,
      next: overloadNext,
      // As `scaleout bench` sends it: writes again with their keys, within the client's retry budget.
      retry: defaultRetry,
    });
    const lb = balancerLog(state, fromLine);
    log(
      `overload ${o.rate}/s: served ${result.goodput}/s, p99 ${result.servedLatencyMs.p99} ms; errors ${JSON.stringify(result.errors)}`,
    );
    await writeReports(path.join(o.out, name.replace(/\W+/g, '-')), {
      ...loadReport(
        {
          scenario: `mixed at ${o.rate} req/s, ${o.connections} connections (${name})`,
          target: state.publicUrl,
          rate: o.rate,
          durationSeconds: o.seconds,
          connections: o.connections,
        },
        result,
        overloadLedger.entries.length,
      ),
    });
    // Healthy afterwards: every web server ready and the balancer answering, within 30 s.
    let healthyAfter = false;
    for (const end = Date.now() + 30_000; Date.now() < end && !healthyAfter; ) {
      healthyAfter = await ready(state);
      if (!healthyAfter) await new Promise((r) => setTimeout(r, 1000));
    }
    const verified = await verifyLedger(overloadLedger, manifest, state.publicUrl);
    // A write that reads as missing: again after the cache's TTL (60 s), to tell a stale cached read
    // (a read that filled the cache from before the write, after the write's delete) from a lost write.
    let lostAfterTtl: number | undefined;
    if (verified.lost.length > 0) {
      log(`${verified.lost.length} writes read as missing: verifying again in 70 s`);
      await new Promise((r) => setTimeout(r, 70_000));
      const again = new Ledger();
      for (const e of verified.lost) again.add(e);
      lostAfterTtl = (await verifyLedger(again, manifest, state.publicUrl)).lost.length;
    }
    return {
      name,
      sustainableRate: sustainable,
      sweep,
      overload: {
        rate: o.rate,
        goodput: result.goodput,
        goodputShare: sustainable ? Math.round((result.goodput / sustainable) * 100) / 100 : null,
        served: result.servedLatencyMs,
        all: result.latencyMs,
        errors: result.errors,
        retries: result.retries,
        generatorLag: result.generatorLagMs,
        balancerServed: lb.served,
        shedByMethod: lb.shedByMethod,
        servedByRoute: lb.servedByRoute,
      },
      healthyAfter,
      lost: verified.lost.length,
      lostByKind: countBy(verified.lost.map((e) => e.kind)),
      lostAfterTtl,
      duplicated: verified.duplicated.length,
      memory,
    };
  } finally {
    await target.stop();
  }
}

/**
 * Overload without collapse: on `cache` with the seeded users, the highest
 * rate that holds (p99 ≤ the bound), then the overload (2,000 req/s over
 * 1,000 connections by default): what was served and how fast, what was shed
 * and how (503 with Retry-After; none "no server available"), whether the
 * site is healthy afterwards, and whether an acknowledged write was lost or
 * doubled. The baseline is the same topology without admission control.
 */
export async function benchOverload(o: OverloadOptions): Promise<{ variants: OverloadVariant[]; summary: string }> {
  const priority = raiseLoadGeneratorPriority();
  o.log(`the load generator runs at nice ${priority}`);
  const variants: OverloadVariant[] = [];
  if (o.variants.includes('admission'))
    variants.push(await runVariant('admission', admissionName(o.admission ?? {}), o.admission ?? {}, {}, o));
  if (o.variants.includes('door'))
    variants.push(await runVariant('door', "admission control by the queue's depth (the door)", doorAdmission, {}, o));
  if (o.variants.includes('none'))
    variants.push(
      await runVariant('none', 'no admission control', admissionOff, { SCALEOUT_SHED_EVENT_LOOP_DELAY_MS: '0' }, o),
    );
  return { variants, summary: summarize(variants, o) };
}

function summarize(variants: OverloadVariant[], o: OverloadOptions): string {
  const lines = [
    `## Overload: \`mixed\` at ${o.rate} req/s for ${o.seconds} s over ${o.connections} connections, on \`cache\` (${o.users} users)`,
    '',
    `The sustainable rate: the highest of a sweep from ${o.startRate} req/s (×${o.growth}, ${o.stepSeconds} s a step, after a 10 s warm-up) with p99 ≤ ${o.p99Ms} ms and ≤ 1 % errors.`,
    '',
    '| variant | sustainable req/s | served req/s (share) | served p50 / p99 ms | balancer p99 ms | 503 with Retry-After | "no server available" | other errors | writes sent again | healthy after | lost / duplicated |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|',
  ];
  for (const v of variants) {
    const e = v.overload.errors;
    const other = Object.entries(e)
      .filter(([k]) => k !== 'http_503' && k !== 'http_503_no_server')
      .reduce((a, [, n]) => a + n, 0);
    lines.push(
      `| ${v.name} | ${v.sustainableRate ?? 'none'} | ${v.overload.goodput} (${v.overload.goodputShare ?? '–'}×) | ${v.overload.served.p50} / ${v.overload.served.p99} | ${v.overload.balancerServed.p99} | ${e.http_503 ?? 0} | ${e.http_503_no_server ?? 0} | ${other} | ${v.overload.retries} | ${v.healthyAfter ? 'yes' : 'no'} | ${v.lost} / ${v.duplicated} |`,
    );
  }
  for (const v of variants) {
    lines.push(
      '',
      `### ${v.name}`,
      '',
      `Sweep: ${v.sweep.map((s) => `${s.rate}/s p99 ${s.p99} ms, ${s.errors} errors${s.held ? '' : ' (too much)'}`).join('; ')}.`,
      ...(v.lost > 0
        ? [
            `Acknowledged writes that read as missing right after the run: ${v.lost} (${JSON.stringify(v.lostByKind)}); 70 s later, past the cache's TTL: ${v.lostAfterTtl ?? '–'}.`,
          ]
        : []),
      `Overload, every answer: p50 ${v.overload.all.p50} ms, p99 ${v.overload.all.p99} ms (retried writes wait out their Retry-After); errors ${JSON.stringify(v.overload.errors)}; 503s by method at the balancer ${JSON.stringify(v.overload.shedByMethod)}; the load generator's own event-loop delay p99 ${v.overload.generatorLag?.p99 ?? '–'} ms.`,
      '',
      'The served requests by route at the balancer (ms: the wait in its queue, the time at the web server, in all):',
      '',
      '| route | served | queue p99 | server p50 / p99 | total p99 |',
      '|---|---:|---:|---:|---:|',
      ...Object.entries(v.overload.servedByRoute ?? {}).map(
        ([route, t]) =>
          `| \`${route}\` | ${t.count} | ${t.queueP99} | ${t.serverP50} / ${t.serverP99} | ${t.totalP99} |`,
      ),
      '',
      `Memory of each web server at the end of the highest rate that held (MB):`,
      '',
      breakdownHeader,
      ...v.memory.map((m) => breakdownRow(m.name, m.breakdown)),
    );
  }
  return lines.join('\n');
}
