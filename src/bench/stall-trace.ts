import { readFile, writeFile } from 'node:fs/promises';
import type pg from 'pg';
import { superuserClient } from '../cluster/components/db-proxy/query.ts';
import type { ClusterState } from '../cluster/run/index.ts';
import { processesOf } from '../cluster/topology/index.ts';

/** One look at the primary: what its busy client backends wait for, and how far behind each replica is. */
export interface StallSample {
  /** ms since the trace started. */
  t: number;
  /** Busy client backends by what they wait for ("IPC:SyncRep", "Lock:transactionid", "CPU" when none). */
  waits: Record<string, number>;
  /** Each standby's write and flush lag (ms) as the primary has it (PostgreSQL's own, from its last reply). */
  lagMs: Record<string, { write: number; flush: number }>;
  /** Time tasks of the machine were stalled on I/O since the last sample (PSI `some`, ms), when the kernel has it. */
  ioStallMs?: number;
}

/** A minute of the trace: how often and how many writers waited, and for what. */
export interface StallMinute {
  samples: number;
  /** Samples with at least one backend waiting on something other than the CPU or a client. */
  waitingSamples: number;
  /** The most backends seen waiting in one sample, and on what. */
  worst: { n: number; waits: Record<string, number>; t: number } | null;
  /** Backend-samples per wait (a backend seen waiting in 3 samples counts 3). */
  byWait: Record<string, number>;
  /** The highest flush lag of any standby seen in the minute (ms). */
  maxFlushLagMs: number;
  /** I/O stall of the machine over the minute (PSI `some`, ms). */
  ioStallMs?: number;
}

const waitsSql = `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS wait, count(*)::int AS n
  FROM pg_stat_activity
  WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()
  GROUP BY 1`;
const lagSql = `SELECT application_name AS name,
  coalesce(extract(epoch FROM write_lag) * 1000, 0)::float8 AS write,
  coalesce(extract(epoch FROM flush_lag) * 1000, 0)::float8 AS flush
  FROM pg_stat_replication`;
/** Waits that are the backend's own work or its client's, not a stall of the server. */
const notStalls = new Set(['CPU', 'Client:ClientRead', 'Client:ClientWrite']);

async function ioStallTotalUs(): Promise<number | undefined> {
  try {
    const text = await readFile('/proc/pressure/io', 'utf8');
    const m = /^some .*total=(\d+)/m.exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A trace of the primary's stalls during a long run: every `everyMs` (100) it
 * asks the primary (through the database proxy's write port) what its busy
 * backends wait for and how far behind each standby is, and reads the
 * machine's I/O pressure. Where a soak's writes stall together while its
 * reads do not, this says whether they waited for a synchronous standby's
 * flush (`IPC:SyncRep`), a lock, or the primary's own WAL (`IO:WALSync`).
 * A sample that cannot be taken (a failover) is skipped.
 */
export function startStallTrace(state: ClusterState, o: { everyMs?: number } = {}) {
  const started = Date.now();
  const samples: StallSample[] = [];
  const proxy = processesOf(state.topology, 'dbProxy')[0];
  let client: pg.Client | undefined;
  let lastIo: number | undefined;
  let busy = false;
  let stopped = false;
  const take = async () => {
    if (busy || stopped || !proxy) return;
    busy = true;
    try {
      client ??= await superuserClient(state, proxy.primary, { timeoutMs: 1000, statementTimeoutMs: 1000 });
      const t = Date.now() - started;
      const [w, l, io] = await Promise.all([client.query(waitsSql), client.query(lagSql), ioStallTotalUs()]);
      const sample: StallSample = {
        t,
        waits: Object.fromEntries(w.rows.map((r: { wait: string; n: number }) => [r.wait, r.n])),
        lagMs: Object.fromEntries(
          l.rows.map((r: { name: string; write: number; flush: number }) => [
            r.name,
            { write: Math.round(r.write * 10) / 10, flush: Math.round(r.flush * 10) / 10 },
          ]),
        ),
      };
      if (io !== undefined && lastIo !== undefined) sample.ioStallMs = Math.round((io - lastIo) / 100) / 10;
      lastIo = io;
      samples.push(sample);
    } catch {
      const old = client;
      client = undefined;
      void old?.end().catch(() => {});
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void take(), o.everyMs ?? 100);

  /** The samples taken in [fromMs, toMs) since the start, summed up. */
  const between = (fromMs: number, toMs: number): StallMinute =>
    summarizeStalls(samples.filter((s) => s.t >= fromMs && s.t < toMs));

  return {
    started,
    between,
    /** Stops sampling; with `file`, writes every sample there (one JSON object a line). */
    async stop(file?: string) {
      stopped = true;
      clearInterval(timer);
      while (busy) await new Promise((r) => setTimeout(r, 20));
      await client?.end().catch(() => {});
      if (file) await writeFile(file, `${samples.map((s) => JSON.stringify(s)).join('\n')}\n`);
    },
  };
}

/** Samples summed up: how many had a backend waiting (not on the CPU or its client), the worst one, the waits, the lags. */
export function summarizeStalls(here: StallSample[]): StallMinute {
  const byWait: Record<string, number> = {};
  let worst: StallMinute['worst'] = null;
  let waitingSamples = 0;
  let maxFlushLagMs = 0;
  let io = 0;
  let hasIo = false;
  for (const s of here) {
    const stalled = Object.entries(s.waits).filter(([k]) => !notStalls.has(k));
    const n = stalled.reduce((sum, [, v]) => sum + v, 0);
    if (n > 0) waitingSamples++;
    for (const [k, v] of stalled) byWait[k] = (byWait[k] ?? 0) + v;
    if (n > (worst?.n ?? 0)) worst = { n, waits: Object.fromEntries(stalled), t: s.t };
    for (const lag of Object.values(s.lagMs)) maxFlushLagMs = Math.max(maxFlushLagMs, lag.flush);
    if (s.ioStallMs !== undefined) {
      io += s.ioStallMs;
      hasIo = true;
    }
  }
  return {
    samples: here.length,
    waitingSamples,
    worst,
    byWait,
    maxFlushLagMs,
    ...(hasIo ? { ioStallMs: Math.round(io) } : {}),
  };
}

/** "12 of 600 samples waiting, the most 7 (IPC:SyncRep 7); by wait: IPC:SyncRep 40, …; flush lag ≤ 812 ms". */
export function describeStalls(m: StallMinute): string {
  const top = Object.entries(m.byWait)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const worst = m.worst
    ? `, the most ${m.worst.n} at once (${Object.entries(m.worst.waits)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')})`
    : '';
  return `${m.waitingSamples} of ${m.samples} samples with a backend waiting${worst}; by wait: ${top || 'none'}; standby flush lag ≤ ${Math.round(m.maxFlushLagMs)} ms${m.ioStallMs !== undefined ? `; I/O stall ${m.ioStallMs} ms` : ''}`;
}
