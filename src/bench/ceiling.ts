import { readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { primaryClient } from '../cluster/components/db-proxy/query.ts';
import type { ClusterState } from '../cluster/run/index.ts';
import { callSupervisor } from '../cluster/supervisor/client.ts';
import { processesOf, shardClustersOf } from '../cluster/topology/select.ts';
import { Ledger } from './ledger.ts';
import { type LoadResult, openLoop, raiseLoadGeneratorPriority } from './load.ts';
import { buildScenario } from './scenarios.ts';
import { seed } from './seed.ts';
import { errorCount, sweepRule } from './sweep.ts';
import { startPreset } from './targets.ts';

/**
 * The vertical ceiling of one PostgreSQL primary: `db-writes` (every request
 * changes a row) swept up a step at a time until p99 passes the bound, on
 * `cache` (sessions in Redis, so the primary takes the app's writes only).
 * Each step also measures what the primary spends: its CPU and the machine's,
 * commits and WAL (bytes, syncs and their time, with track_wal_io_timing),
 * and what its active backends wait on, sampled every 100 ms
 * (pg_stat_activity: CPU, IO:WALSync, IPC:SyncRep, Lock, LWLock, …).
 */

export interface CeilingOptions {
  /** `cache` (one primary) or `sharded` (the same load over the shard clusters' primaries). */
  preset: 'cache' | 'sharded';
  startRate: number;
  /** Each step's rate is the last one × this. */
  growth: number;
  stepSeconds: number;
  p99Ms: number;
  users: number;
  photos: number;
  synchronous: boolean;
  log: (line: string) => void;
}

/** CPU used over a step, in cores (1 = one core busy the whole step). */
export type CpuUse = Record<
  'machine' | 'postgres' | 'web' | 'loadBalancer' | 'redis' | 'patroni' | 'generator',
  number
>;

export interface CeilingStep {
  rate: number;
  throughput: number;
  p50: number;
  p99: number;
  errors: number;
  holds: boolean;
  cpu: CpuUse;
  commitsPerSecond: number;
  walMbPerSecond: number;
  walSyncsPerSecond: number;
  /** Mean time of one WAL sync (fdatasync), ms. */
  walSyncMs: number;
  /** Active backends on average, and the share of them by what they were doing (wait event, or CPU). */
  activeBackends: number;
  waits: Record<string, number>;
}

export interface CeilingResult {
  preset: string;
  synchronous: boolean;
  cores: number;
  highest: number;
  steps: CeilingStep[];
  /** What ran out first, read from the first step that did not hold (or the last one). */
  verdict: string;
}

const clockTicks = 100; // USER_HZ on Linux

/** utime + stime of a process, in ticks, and its parent. */
async function procStat(pid: number): Promise<{ ticks: number; ppid: number } | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ticks: Number(fields[11]) + Number(fields[12]), ppid: Number(fields[1]) };
  } catch {
    return null;
  }
}

async function machineTicks(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Every process's ticks and parent, so a postmaster's backends (its children) can be summed. */
async function allProcesses(): Promise<Map<number, { ticks: number; ppid: number }>> {
  const out = new Map<number, { ticks: number; ppid: number }>();
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const s = await procStat(pid);
    if (s) out.set(pid, s);
  }
  return out;
}

type Groups = Record<Exclude<keyof CpuUse, 'machine'>, number[]>;

/** Ticks per group: a group's PIDs and, for PostgreSQL, every child of its postmasters. */
async function groupTicks(groups: Groups): Promise<Record<keyof Groups, number>> {
  const procs = await allProcesses();
  const sum = (pids: number[], withChildren: boolean) => {
    const roots = new Set(pids);
    let t = 0;
    for (const [pid, s] of procs) if (roots.has(pid) || (withChildren && roots.has(s.ppid))) t += s.ticks;
    return t;
  };
  return Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, sum(pids, k === 'postgres')])) as Record<
    keyof Groups,
    number
  >;
}

/** The topology's processes by group; PostgreSQL is every Patroni node's postmaster (from its data dir). */
async function processGroups(state: ClusterState): Promise<Groups> {
  const kindOf = new Map(
    [...processesOf(state.topology, 'web'), ...processesOf(state.topology, 'patroni')].map((p) => [p.name, p.kind]),
  );
  const groups: Groups = { postgres: [], web: [], loadBalancer: [], redis: [], patroni: [], generator: [process.pid] };
  for (const p of state.processes) {
    const kind = kindOf.get(p.name);
    if (kind === 'web') groups.web.push(p.pid);
    else if (kind === 'patroni') groups.patroni.push(p.pid);
    else if (p.name === 'load-balancer') groups.loadBalancer.push(p.pid);
    else if (p.name.startsWith('redis-') && !p.name.endsWith('-exporter')) groups.redis.push(p.pid);
  }
  for (const node of processesOf(state.topology, 'patroni')) {
    try {
      const pid = Number(
        (await readFile(path.join(state.runDir, node.name, 'data', 'postmaster.pid'), 'utf8')).split('\n')[0],
      );
      if (pid > 0) groups.postgres.push(pid);
    } catch {
      // not running
    }
  }
  return groups;
}

interface WalSample {
  commits: number;
  walBytes: number;
  syncs: number;
  syncMs: number;
}

async function walSample(client: pg.Client): Promise<WalSample> {
  const { rows } = await client.query<{ commits: string; wal_bytes: string; wal_sync: string; wal_sync_time: number }>(
    `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits,
            wal_bytes, wal_sync, wal_sync_time FROM pg_stat_wal`,
  );
  const r = rows[0];
  return {
    commits: Number(r?.commits ?? 0),
    walBytes: Number(r?.wal_bytes ?? 0),
    syncs: Number(r?.wal_sync ?? 0),
    syncMs: Number(r?.wal_sync_time ?? 0),
  };
}

interface Waits {
  active: number;
  counts: Record<string, number>;
  waits: Record<string, number>;
}

/** Several primaries' samples as one: active backends add up, the shares are of all of them. */
function mergeWaits(all: Waits[]): Waits {
  const counts: Record<string, number> = {};
  for (const w of all) for (const [k, v] of Object.entries(w.counts)) counts[k] = (counts[k] ?? 0) + v;
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return {
    active: Math.round(all.reduce((a, w) => a + w.active, 0) * 100) / 100,
    counts,
    waits: Object.fromEntries(
      Object.entries(counts)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => [k, Math.round((v / Math.max(1, total)) * 1000) / 1000]),
    ),
  };
}

/** What the primary's active client backends are doing, sampled every 100 ms until `stop`. */
function sampleWaits(client: pg.Client): { stop(): Promise<Waits> } {
  const counts: Record<string, number> = {};
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const { rows } = await client
        .query<{ what: string; n: string }>(
          `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS what, count(*) AS n
             FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()
            GROUP BY 1`,
        )
        .catch(() => ({ rows: [] }));
      samples++;
      for (const r of rows) counts[r.what] = (counts[r.what] ?? 0) + Number(r.n);
      await new Promise((res) => setTimeout(res, 100));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      const merged = mergeWaits([{ active: 0, counts, waits: {} }]);
      return { active: Math.round((total / Math.max(1, samples)) * 100) / 100, counts, waits: merged.waits };
    },
  };
}

/** The shard clusters' names (sharded), or [undefined]: the one cluster. */
const clustersOf = (state: ClusterState): (string | undefined)[] => {
  const named = shardClustersOf(state.topology);
  return named.length > 0 ? named : [undefined];
};

/** WAL and commits summed over every primary. */
async function walSum(clients: pg.Client[]): Promise<WalSample> {
  const all = await Promise.all(clients.map(walSample));
  return all.reduce(
    (a, b) => ({
      commits: a.commits + b.commits,
      walBytes: a.walBytes + b.walBytes,
      syncs: a.syncs + b.syncs,
      syncMs: a.syncMs + b.syncMs,
    }),
    { commits: 0, walBytes: 0, syncs: 0, syncMs: 0 },
  );
}

/** One step: the load, and what the primaries and the machine spent meanwhile. */
async function measureStep(
  state: ClusterState,
  clients: pg.Client[],
  rate: number,
  seconds: number,
  next: Awaited<ReturnType<typeof buildScenario>>,
): Promise<{ load: LoadResult; step: Omit<CeilingStep, 'holds'> }> {
  const groups = await processGroups(state);
  const [cpu0, m0, w0] = [await groupTicks(groups), await machineTicks(), await walSum(clients)];
  const started = performance.now();
  const samplers = await Promise.all(clustersOf(state).map((c) => primaryClient(state, c)));
  const waits = samplers.map(sampleWaits);
  const load = await openLoop({ origin: state.publicUrl, rate, seconds, connections: 512, next });
  const sampled = mergeWaits(await Promise.all(waits.map((w) => w.stop())));
  for (const s of samplers) await s.end().catch(() => {});
  const elapsed = (performance.now() - started) / 1000;
  const [cpu1, m1, w1] = [await groupTicks(groups), await machineTicks(), await walSum(clients)];
  const cores = (ticks: number) => Math.round((ticks / clockTicks / elapsed) * 100) / 100;
  const machineCores = os.cpus().length * ((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total));
  const syncs = w1.syncs - w0.syncs;
  return {
    load,
    step: {
      rate,
      throughput: load.throughput,
      p50: load.latencyMs.p50,
      p99: load.latencyMs.p99,
      errors: errorCount(load),
      cpu: {
        machine: Math.round(machineCores * 100) / 100,
        postgres: cores(cpu1.postgres - cpu0.postgres),
        web: cores(cpu1.web - cpu0.web),
        loadBalancer: cores(cpu1.loadBalancer - cpu0.loadBalancer),
        redis: cores(cpu1.redis - cpu0.redis),
        patroni: cores(cpu1.patroni - cpu0.patroni),
        generator: cores(cpu1.generator - cpu0.generator),
      },
      commitsPerSecond: Math.round((w1.commits - w0.commits) / elapsed),
      walMbPerSecond: Math.round(((w1.walBytes - w0.walBytes) / 1e6 / elapsed) * 100) / 100,
      walSyncsPerSecond: Math.round(syncs / elapsed),
      walSyncMs: syncs > 0 ? Math.round(((w1.syncMs - w0.syncMs) / syncs) * 1000) / 1000 : 0,
      activeBackends: sampled.active,
      waits: sampled.waits,
    },
  };
}

/**
 * What ran out, read from a step: the machine's CPU when it is ≥ 90 % busy
 * (and who used it), else the largest share of what the primary's backends
 * waited on.
 */
export function verdictOf(step: CeilingStep, cores: number): string {
  const busy = step.cpu.machine / cores;
  const users = (Object.entries(step.cpu) as [keyof CpuUse, number][])
    .filter(([k]) => k !== 'machine')
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const [topWait, share] = Object.entries(step.waits)[0] ?? ['none', 0];
  const waitLine = `the primary's active backends (${step.activeBackends} on average) mostly ${topWait === 'CPU' ? 'on CPU' : `waiting on ${topWait}`} (${Math.round(share * 100)} %)`;
  if (busy >= 0.9) {
    return `CPU: the machine's ${cores} cores ${Math.round(busy * 100)} % busy at ${step.rate} req/s (cores used: ${users}); ${waitLine}`;
  }
  return `not the machine's CPU (${Math.round(busy * 100)} % busy; cores used: ${users}): ${waitLine}`;
}

export async function benchCeiling(o: CeilingOptions): Promise<CeilingResult> {
  o.log(`the load generator runs at nice ${raiseLoadGeneratorPriority()}`);
  const target = await startPreset(o.preset, { name: `ceiling-${o.preset}`, synchronous: o.synchronous });
  const { state } = target;
  const clients = await Promise.all(clustersOf(state).map((c) => primaryClient(state, c)));
  try {
    await callSupervisor(state, 'POST', '/autoscale', { enabled: false }).catch(() => {});
    // WAL sync times are counted only with track_wal_io_timing (a superuser setting, reloaded).
    for (const client of clients) {
      await client.query('ALTER SYSTEM SET track_wal_io_timing = on');
      await client.query('SELECT pg_reload_conf()');
    }
    const manifest = await seed({ target: state.publicUrl, users: o.users, photos: o.photos, follows: 20, seed: 1 });
    const next = await buildScenario('db-writes', manifest, new Ledger(), 11);
    await openLoop({ origin: state.publicUrl, rate: o.startRate, seconds: 10, connections: 128, next }); // warm-up
    const steps: CeilingStep[] = [];
    let highest = 0;
    for (let rate = o.startRate, i = 0; i < sweepRule.maxSteps; i++, rate = Math.round(rate * o.growth)) {
      const { load, step } = await measureStep(state, clients, rate, o.stepSeconds, next);
      const holds = step.p99 <= o.p99Ms && step.errors <= load.sent * sweepRule.maxErrorShare;
      steps.push({ ...step, holds });
      o.log(
        `${rate}/s: ${step.throughput} req/s, p99 ${step.p99} ms, ${step.errors} errors, CPU ${step.cpu.machine} cores (postgres ${step.cpu.postgres}, web ${step.cpu.web}), ${step.commitsPerSecond} commits/s, ${step.walSyncsPerSecond} WAL syncs/s of ${step.walSyncMs} ms, waits ${JSON.stringify(step.waits)} → ${holds ? 'holds' : 'too much'}`,
      );
      if (!holds) break;
      highest = rate;
    }
    const cores = os.cpus().length;
    const decisive = steps.find((s) => !s.holds) ?? steps.at(-1);
    return {
      preset: o.preset,
      synchronous: o.synchronous,
      cores,
      highest,
      steps,
      verdict: decisive ? verdictOf(decisive, cores) : 'no step ran',
    };
  } finally {
    for (const client of clients) await client.end().catch(() => {});
    await target.stop();
  }
}

export function ceilingSummary(r: CeilingResult, o: { p99Ms: number; stepSeconds: number }): string {
  const rows = r.steps.map(
    (s) =>
      `| ${s.rate} | ${s.throughput} | ${s.p50} | ${s.p99} | ${s.errors} | ${s.cpu.machine} | ${s.cpu.postgres} | ${s.cpu.web} | ${Math.round((s.cpu.loadBalancer + s.cpu.redis + s.cpu.patroni) * 100) / 100} | ${s.cpu.generator} | ${s.commitsPerSecond} | ${s.walMbPerSecond} | ${s.walSyncsPerSecond} | ${s.walSyncMs} | ${s.activeBackends} | ${Object.entries(
        s.waits,
      )
        .slice(0, 3)
        .map(([k, v]) => `${k} ${Math.round(v * 100)} %`)
        .join(', ')} | ${s.holds ? 'holds' : 'too much'} |`,
  );
  return [
    `## The write ceiling on ${r.preset} (${r.preset === 'sharded' ? "the shard clusters' primaries" : 'one PostgreSQL primary'}, ${r.synchronous ? 'synchronous' : 'asynchronous'} replication), db-writes`,
    '',
    `Steps of ${o.stepSeconds} s; a rate holds while p99 ≤ ${o.p99Ms} ms and ≤ 1 % fail. Highest that held: **${r.highest} req/s** (every request a write: a like, an unlike, a follow or an unfollow).`,
    '',
    `What ran out: ${r.verdict}.`,
    '',
    '| rate | served/s | p50 ms | p99 ms | errors | CPU machine (cores) | postgres | web | LB+Redis+Patroni | generator | commits/s | WAL MB/s | WAL syncs/s | ms per sync | active backends | waits (top 3) | |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}
