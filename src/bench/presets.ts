import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { down, up } from '../cluster/launcher.ts';
import { httpStatus, waitUntil } from '../cluster/process.ts';
import { buildPreset, type PresetName } from '../cluster/topology.ts';
import { openLoop } from './load.ts';
import { benchWebEnv, freePort, startNode } from './processes.ts';
import { runBench, verifyRun } from './run.ts';
import { seed } from './seed.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface PresetRow {
  name: string;
  highestRate: number | null;
  p99AtHighest: number | null;
  steps: { rate: number; p99: number; errors: number; sustainable: boolean }[];
  acknowledgedWrites?: number;
  lostWrites?: number;
  duplicatedWrites?: number;
}

export interface PresetBenchOptions {
  p99Ms: number;
  stepSeconds: number;
  startRate: number;
  users: number;
  photos: number;
  out: string;
  log: (line: string) => void;
}

/** The hello-world's sweep: same bound, same step rule, a plain GET. */
async function helloSweep(o: PresetBenchOptions): Promise<PresetRow> {
  const port = await freePort();
  const hello = startNode([path.join(root, 'src/bench/hello.ts'), String(port)]);
  try {
    const origin = `http://127.0.0.1:${port}`;
    await waitUntil(async () => (await httpStatus(`${origin}/`)) === 200, 30_000);
    const row: PresetRow = { name: 'Fastify hello-world (baseline)', highestRate: null, p99AtHighest: null, steps: [] };
    for (let rate = o.startRate * 10, step = 0; step < 12; step++, rate = Math.round(rate * 1.5)) {
      const r = await openLoop({ origin, rate, seconds: o.stepSeconds, connections: 64, next: () => ({ path: '/' }) });
      const errors = Object.values(r.errors).reduce((a, b) => a + b, 0);
      const sustainable = r.latencyMs.p99 <= o.p99Ms && errors <= r.sent * 0.01;
      row.steps.push({ rate, p99: r.latencyMs.p99, errors, sustainable });
      o.log(`hello-world ${rate}/s: p99 ${r.latencyMs.p99} ms`);
      if (!sustainable) break;
      row.highestRate = rate;
      row.p99AtHighest = r.latencyMs.p99;
    }
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
  const runRoot = await mkdtemp(path.join(os.tmpdir(), 'scaleout-presets-'));
  try {
    for (const preset of ['single', 'db', 'lb'] as PresetName[]) {
      o.log(`starting ${preset}`);
      const state = await up(buildPreset(preset, { name: `sweep-${preset}` }), {
        runRoot,
        webEnv: benchWebEnv,
      });
      try {
        const manifest = await seed({
          target: state.publicUrl,
          users: o.users,
          photos: o.photos,
          follows: 50,
          seed: 1,
        });
        const out = path.join(o.out, preset);
        const report = await runBench({
          target: state.publicUrl,
          scenario: 'mixed',
          rate: o.startRate,
          seconds: o.stepSeconds,
          connections: 64,
          out,
          manifest,
          sweepP99Ms: o.p99Ms,
          log: (l) => o.log(`${preset}: ${l}`),
        });
        const verified = await verifyRun(out);
        const highest = report.sweep?.filter((s) => s.sustainable).at(-1);
        rows.push({
          name: preset,
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
        });
      } finally {
        await down(state, { purge: true });
      }
    }
    return rows;
  } finally {
    await rm(runRoot, { recursive: true, force: true });
  }
}

export function presetTable(rows: PresetRow[], p99Ms: number): string {
  return [
    `| target | highest rate with p99 ≤ ${p99Ms} ms (req/s) | p99 there (ms) | rates tried (p99 ms) | acknowledged writes | lost | duplicated |`,
    '|---|---:|---:|---|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.highestRate ?? 'none'} | ${r.p99AtHighest ?? '-'} | ${r.steps.map((s) => `${s.rate} (${s.p99}${s.errors ? `, ${s.errors} err` : ''})`).join(', ')} | ${r.acknowledgedWrites ?? '-'} | ${r.lostWrites ?? '-'} | ${r.duplicatedWrites ?? '-'} |`,
    ),
  ].join('\n');
}
