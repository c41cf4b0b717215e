import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderEnv } from '../config.ts';
import type { Percentiles } from './load.ts';
import { runBench, verifyRun } from './run.ts';
import { seed } from './seed.ts';
import { startSingle } from './targets.ts';

const _root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface FsyncRow {
  fsync: boolean;
  rate: number;
  throughput: number;
  latencyMs: Percentiles;
  errors: number;
  acknowledged: number;
  lost: number;
}

/**
 * The cost of durable originals: the `upload` scenario, open loop at a fixed
 * rate, on a fresh single server with SCALEOUT_BLOB_FSYNC on and off, one
 * after the other in the same run. Each run's acknowledged writes are verified.
 */
export async function benchFsync(o: {
  rate: number;
  seconds: number;
  users: number;
  out: string;
  log: (line: string) => void;
}): Promise<FsyncRow[]> {
  const rows: FsyncRow[] = [];
  for (const fsync of [true, false]) {
    const app = await startSingle(renderEnv({ blobFsync: fsync }));
    try {
      const target = app.origin;
      const manifest = await seed({ target, users: o.users, photos: 1, follows: 0, seed: 1 });
      const out = path.join(o.out, fsync ? 'fsync' : 'no-fsync');
      const report = await runBench({
        target,
        scenario: 'upload',
        rate: o.rate,
        seconds: o.seconds,
        connections: 16,
        out,
        manifest,
      });
      const verified = await verifyRun(out, target);
      const errors = Object.values(report.errors).reduce((a, b) => a + b, 0);
      rows.push({
        fsync,
        rate: o.rate,
        throughput: report.throughput,
        latencyMs: report.latencyMs,
        errors,
        acknowledged: verified.checked,
        lost: verified.lost.length,
      });
      o.log(`fsync ${fsync}: p50 ${report.latencyMs.p50} ms, p99 ${report.latencyMs.p99} ms, ${errors} errors`);
    } finally {
      await app.stop();
    }
  }
  return rows;
}

export function fsyncTable(rows: FsyncRow[]): string {
  return [
    '| originals | rate (uploads/s) | p50 ms | p90 ms | p99 ms | max ms | errors | acknowledged | lost |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.fsync ? 'fsync before the 202 (default)' : 'no fsync'} | ${r.rate} | ${r.latencyMs.p50} | ${r.latencyMs.p90} | ${r.latencyMs.p99} | ${r.latencyMs.max} | ${r.errors} | ${r.acknowledged} | ${r.lost} |`,
    ),
  ].join('\n');
}
