import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { LoadResult } from './load.ts';

export interface BenchReport {
  scenario: string;
  target: string;
  rate: number;
  durationSeconds: number;
  connections: number;
  machine: string;
  date: string;
  throughput: number;
  sent: number;
  completed: number;
  errors: Record<string, number>;
  /** Milliseconds, from each request's scheduled time. */
  latencyMs: LoadResult['latencyMs'];
  /** The same, of the requests that succeeded only (shed 503s are fast, and not service). */
  servedLatencyMs?: LoadResult['servedLatencyMs'];
  /** Writes sent again with their Idempotency-Key. */
  retries?: number;
  /** Retries the client's retry budget refused. */
  retriesRefused?: number;
  /** Successful answers per second while the load was sent. */
  goodput?: number;
  /** The load generator's own event-loop delay (ms). */
  generatorLagMs?: LoadResult['generatorLagMs'];
  timeline: LoadResult['timeline'];
  /** The warm-up before the measured seconds, kept apart (`scaleout bench --warm-up`). */
  warmUp?: LoadResult['warmUp'];
  writesAcknowledged: number;
  sweep?: { rate: number; throughput: number; p99: number; errors: number; sustainable: boolean }[];
  highestSustainableRate?: number;
  /** More charts over the same seconds as the timeline (e.g. the web-server count under the autoscaler). */
  charts?: { title: string; series: Record<string, (number | null)[]> }[];
  /** Moments drawn as a line on every chart (a fault: "dc-a killed"), seconds from the start. */
  marks?: { t: number; label: string }[];
}

/** A report of one open-loop run: what was asked, on which machine, and what the load generator saw. */
export function loadReport(
  asked: Pick<BenchReport, 'scenario' | 'target' | 'rate' | 'durationSeconds' | 'connections'>,
  result: LoadResult,
  writesAcknowledged: number,
): BenchReport {
  return {
    ...asked,
    machine: machine(),
    date: new Date().toISOString(),
    throughput: result.throughput,
    sent: result.sent,
    completed: result.completed,
    errors: result.errors,
    latencyMs: result.latencyMs,
    servedLatencyMs: result.servedLatencyMs,
    retries: result.retries,
    retriesRefused: result.retriesRefused,
    goodput: result.goodput,
    generatorLagMs: result.generatorLagMs,
    timeline: result.timeline,
    warmUp: result.warmUp,
    writesAcknowledged,
  };
}

export const machine = () =>
  `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;

export function summaryMarkdown(r: BenchReport): string {
  const errors = Object.entries(r.errors);
  const lines = [
    `# scaleout bench: ${r.scenario}`,
    '',
    `- target: ${r.target}`,
    `- open loop at ${r.rate} req/s for ${r.durationSeconds} s, ${r.connections} connections${r.warmUp ? `, after a ${r.warmUp.seconds} s warm-up at the same rate (not counted: ${r.warmUp.completed} of ${r.warmUp.sent} served, served p99 ${r.warmUp.servedLatencyMs.p99} ms)` : ''}`,
    `- machine: ${r.machine}; ${r.date}`,
    '',
    '| throughput req/s | sent | ok | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    `| ${r.throughput} | ${r.sent} | ${r.completed} | ${r.latencyMs.p50} | ${r.latencyMs.p90} | ${r.latencyMs.p99} | ${r.latencyMs.p999} | ${r.latencyMs.max} | ${errors.reduce((a, [, n]) => a + n, 0)} |`,
    '',
    ...(r.servedLatencyMs
      ? [
          `Served (2xx/3xx) only: ${r.goodput ?? '?'} req/s while the load was sent; p50 ${r.servedLatencyMs.p50} ms, p99 ${r.servedLatencyMs.p99} ms, max ${r.servedLatencyMs.max} ms.`,
          ...(r.generatorLagMs
            ? [
                `The load generator's own event-loop delay: p99 ${r.generatorLagMs.p99} ms, max ${r.generatorLagMs.max} ms.`,
              ]
            : []),
          '',
        ]
      : []),
    errors.length ? `Errors by type: ${errors.map(([k, n]) => `${k} ${n}`).join(', ')}` : 'No errors.',
    `Requests sent again (keyed writes, and reads shed with Retry-After when the run retries reads): ${r.retries ?? 0}; retries refused by the client's retry budget: ${r.retriesRefused ?? 0}.`,
    `Acknowledged writes in the ledger: ${r.writesAcknowledged}.`,
  ];
  if (r.sweep) {
    lines.push(
      '',
      '## Sweep',
      '',
      '| rate | throughput | p99 ms | errors | sustainable |',
      '|---:|---:|---:|---:|---|',
    );
    for (const s of r.sweep)
      lines.push(`| ${s.rate} | ${s.throughput} | ${s.p99} | ${s.errors} | ${s.sustainable ? 'yes' : 'no'} |`);
    lines.push('', `Highest sustainable rate: **${r.highestSustainableRate ?? 'none'}** req/s.`);
  }
  return `${lines.join('\n')}\n`;
}

/** A standalone HTML page (uPlot inlined) with throughput and latency over time. */
export async function reportHtml(r: BenchReport): Promise<string> {
  const require = createRequire(import.meta.url);
  const dist = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
  const [js, css] = await Promise.all([
    readFile(path.join(dist, 'uPlot.iife.min.js'), 'utf8'),
    readFile(path.join(dist, 'uPlot.min.css'), 'utf8'),
  ]);
  const t = r.timeline;
  const data = JSON.stringify({
    t: t.map((p) => p.t),
    ok: t.map((p) => p.ok),
    errors: t.map((p) => p.errors),
    p50: t.map((p) => p.p50),
    p99: t.map((p) => p.p99),
  }).replace(/</g, '\\u003c');
  const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>scaleout bench: ${esc(r.scenario)}</title>
<style>${css}
body{font:15px system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}</style>
</head><body>
<h1>scaleout bench: ${esc(r.scenario)}</h1>
<p>${esc(r.target)} · open loop at ${r.rate} req/s for ${r.durationSeconds} s · ${esc(r.machine)} · ${esc(r.date)}</p>
${(r.marks ?? []).length ? `<p>Marked on every chart (dashed red): ${(r.marks ?? []).map((m) => `${esc(m.label)} at ${m.t} s`).join('; ')}</p>` : ''}
<table><tr><th>throughput</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th></tr>
<tr><td>${r.throughput}/s</td><td>${r.latencyMs.p50} ms</td><td>${r.latencyMs.p90} ms</td><td>${r.latencyMs.p99} ms</td><td>${r.latencyMs.p999} ms</td><td>${r.latencyMs.max} ms</td><td>${Object.values(r.errors).reduce((a, b) => a + b, 0)}</td></tr></table>
<h2>Throughput</h2><div id="throughput"></div>
<h2>Latency (from the scheduled time)</h2><div id="latency"></div>
${(r.charts ?? []).map((c, i) => `<h2>${esc(c.title)}</h2><div id="extra-${i}"></div>`).join('\n')}
<script>${js}</script>
<script>
const d = ${data};
const marks = ${JSON.stringify(r.marks ?? []).replace(/</g, '\\u003c')};
// Each mark: a dashed red line across the chart, labelled at its top.
const drawMarks = (u) => {
  const c = u.ctx;
  c.save();
  c.strokeStyle = '#d33'; c.fillStyle = '#d33'; c.setLineDash([6, 4]); c.lineWidth = 2; c.font = '12px system-ui';
  for (const m of marks) {
    const x = u.valToPos(m.t, 'x', true);
    c.beginPath(); c.moveTo(x, u.bbox.top); c.lineTo(x, u.bbox.top + u.bbox.height); c.stroke();
    c.fillText(m.label, x + 4, u.bbox.top + 14);
  }
  c.restore();
};
const opts = (title, series) => ({ title, width: Math.min(1000, innerWidth - 60), height: 300, scales: { x: { time: false } }, series: [{ label: 's' }, ...series], plugins: [{ hooks: { draw: [drawMarks] } }] });
new uPlot(opts('requests per second', [{ label: 'ok', stroke: '#2a7' }, { label: 'errors', stroke: '#d33' }]), [d.t, d.ok, d.errors], document.getElementById('throughput'));
new uPlot(opts('latency ms', [{ label: 'p50', stroke: '#27c' }, { label: 'p99', stroke: '#c72' }]), [d.t, d.p50, d.p99], document.getElementById('latency'));
const extra = ${JSON.stringify(r.charts ?? []).replace(/</g, '\\u003c')};
const colours = ['#73c', '#2a7', '#c72', '#27c'];
extra.forEach((c, i) => {
  const names = Object.keys(c.series);
  new uPlot(opts(c.title, names.map((n, k) => ({ label: n, stroke: colours[k % colours.length] }))), [d.t, ...names.map((n) => c.series[n])], document.getElementById('extra-' + i));
});
</script></body></html>
`;
}

export async function writeReports(dir: string, r: BenchReport): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'report.json'), `${JSON.stringify(r, null, 2)}\n`);
  await writeFile(path.join(dir, 'summary.md'), summaryMarkdown(r));
  await writeFile(path.join(dir, 'report.html'), await reportHtml(r));
}
