import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderEnv } from '../config.ts';
import { freePort } from './processes.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** One way of starting the single server: the arguments after `node`. */
export interface StartVariant {
  name: string;
  args: (port: number, dataDir: string) => string[];
  env?: Record<string, string>;
}

const nativeArgs = (port: number, dataDir: string) => [
  path.join(root, 'bin/scaleout.js'),
  'start',
  '--port',
  String(port),
  '--data-dir',
  dataDir,
];

export const startVariants: StartVariant[] = [
  { name: 'native type stripping + compile cache (bin/scaleout.js)', args: nativeArgs },
  {
    name: 'native type stripping, compile cache off',
    args: nativeArgs,
    env: { NODE_DISABLE_COMPILE_CACHE: '1' },
  },
  {
    name: 'tsx loader (--import tsx)',
    args: (port, dataDir) => [
      '--import',
      'tsx',
      path.join(root, 'src/cli/main.ts'),
      'start',
      '--port',
      String(port),
      '--data-dir',
      dataDir,
    ],
  },
];

export interface StartRow {
  name: string;
  /** Milliseconds from spawn to the first 200 of /healthz, one per run. */
  runs: number[];
}

/** Starts the server, returns the milliseconds until /healthz answered 200, and stops it. */
async function timeOneStart(variant: StartVariant, dataDir: string): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, variant.args(port, dataDir), {
    cwd: root,
    env: { ...process.env, ...renderEnv({ logLevel: 'warn' }), ...variant.env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    for (const end = started + 60_000; performance.now() < end; ) {
      if (child.exitCode !== null) throw new Error(`${variant.name}: exited with ${child.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return performance.now() - started;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`${variant.name}: /healthz did not answer within 60 s`);
  } finally {
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  }
}

/**
 * Warm start of `npm start`: one data dir, made by a first start that is not
 * counted (migrations run there), then `runs` starts of each variant,
 * interleaved so that both see the same machine.
 */
export async function benchStart(opts: {
  runs: number;
  variants?: StartVariant[];
  log: (line: string) => void;
}): Promise<StartRow[]> {
  const variants = opts.variants ?? startVariants;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'scaleout-bench-start-'));
  try {
    for (const v of variants) await timeOneStart(v, dataDir); // warms the data dir and the file cache
    const rows: StartRow[] = variants.map((v) => ({ name: v.name, runs: [] }));
    for (let i = 0; i < opts.runs; i++) {
      for (const [j, v] of variants.entries()) {
        const ms = await timeOneStart(v, dataDir);
        rows[j]?.runs.push(ms);
        opts.log(`run ${i + 1}/${opts.runs} ${v.name}: ${ms.toFixed(0)} ms`);
      }
    }
    return rows;
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};

export function startTable(rows: StartRow[]): string {
  const base = median(rows[0]?.runs ?? [1]);
  return [
    '| how it starts | runs | median ms | min ms | max ms | vs first row |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.runs.length} | ${median(r.runs).toFixed(0)} | ${Math.min(...r.runs).toFixed(0)} | ${Math.max(...r.runs).toFixed(0)} | ${(median(r.runs) / base).toFixed(2)}× |`,
    ),
  ].join('\n');
}
