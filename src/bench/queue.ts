import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { componentOf } from '../cluster/components/registry.ts';
import { appConfig } from '../cluster/run/context.ts';
import { openSiteQueue } from '../cluster/run/jobs.ts';
import { type ClusterState, loadState } from '../cluster/run/state.ts';
import { callSupervisor } from '../cluster/supervisor/client.ts';
import type { PresetName } from '../cluster/topology/index.ts';
import { allProcesses, firstDataCenter, workers } from '../cluster/topology/select.ts';
import { closedLoop, LatencyHistogram, openLoop, type Percentiles, type RequestSpec } from './load.ts';
import { type KindProfile, profileKind, profileTables } from './profile.ts';
import { loadReport, writeReports } from './report.ts';
import { mulberry32, type SeedManifest, seed } from './seed.ts';
import { startPreset } from './targets.ts';

/** A photo as a phone sends one: a 2000 × 1500 JPEG of noise (about 1 MB, and costly to decode). */
export async function phonePhoto(seedValue = 1): Promise<Buffer> {
  const { default: sharp } = await import('sharp');
  const [w, h] = [2000, 1500];
  const raw = Buffer.alloc(w * h * 3);
  const random = mulberry32(seedValue);
  for (let i = 0; i < raw.length; i++) raw[i] = (i % 3) * 60 + Math.floor(random() * 40);
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } })
    .jpeg({ quality: 85 })
    .toBuffer();
}

const boundary = '----scaleoutqueuebench';
/** A multipart upload of `image`. */
export function uploadRequest(image: Buffer, token: string, caption: string, onAck: (id: string) => void): RequestSpec {
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="caption"\r\n\r\n${caption}\r\n`),
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`,
    ),
    image,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return {
    method: 'POST',
    path: '/api/v1/photos',
    headers: { authorization: `Bearer ${token}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
    body,
    onAnswer: (status, text) => {
      if (status === 202) onAck(JSON.parse(text).photo.id);
    },
  };
}

/** The site's PostgreSQL (its primary, through the database proxy) as the web servers reach it. */
function siteDb(state: ClusterState): pg.Pool {
  const url = appConfig(state, firstDataCenter(state.topology)).databaseUrl;
  if (!url) throw new Error('the topology has no database URL');
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  return pool;
}

/** Upload → ready, per photo, from the photos' own rows (created at the upload, updated when made ready). */
async function timesToReady(db: pg.Pool, ids: string[]): Promise<{ ready: number; pending: number; ms: number[] }> {
  const { rows } = await db.query<{ status: string; ms: number }>(
    `SELECT status, EXTRACT(EPOCH FROM (updated_at - created_at)) * 1000 AS ms FROM photos WHERE id = ANY($1)`,
    [ids],
  );
  const ready = rows.filter((r) => r.status === 'ready');
  return { ready: ready.length, pending: rows.length - ready.length, ms: ready.map((r) => Number(r.ms)) };
}

const percentiles = (xs: number[]): Percentiles => {
  const h = new LatencyHistogram();
  for (const x of xs) h.record(x * 1000);
  return h.count ? h.summary() : { p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
};

export interface UploadRunRow {
  preset: string;
  uploads: { sent: number; accepted: number; p50: number; p99: number };
  reads: { sent: number; ok: number; p50: number; p99: number };
  timeToReadyMs: Percentiles & { ready: number; pending: number };
  maxWorkers: number | null;
  maxDepth: number | null;
  report: string;
}

export interface QueueBenchOptions {
  presets: PresetName[];
  /** Uploads per second, and reads (home feed) per second beside them. */
  uploadRate: number;
  readRate: number;
  seconds: number;
  users: number;
  /** Also profile each kind of write in a web server of its own (`--cpu-prof`). */
  profile: boolean;
  /** Only the upload bursts. */
  uploadsOnly: boolean;
  out: string;
  log: (line: string) => void;
}

/**
 * An upload burst with reads beside it, on each preset: the upload and
 * read latencies, upload → ready for every accepted photo (from PostgreSQL's
 * rows), and on a preset with workers the worker count and the queue depth
 * each second (report.html). Then the CPU each kind of request costs in
 * each tier (see `cpuPerRequest`).
 */
export async function benchQueue(
  o: QueueBenchOptions,
): Promise<{ uploads: UploadRunRow[]; cpu: CpuRow[]; profiles: KindProfile[] }> {
  const uploads: UploadRunRow[] = [];
  const cpu: CpuRow[] = [];
  const profiles: KindProfile[] = [];
  const image = await phonePhoto();
  for (const preset of o.presets) {
    o.log(`starting ${preset}`);
    const target = await startPreset(preset, { name: `bench-q-${preset}` });
    const { state } = target;
    const db = siteDb(state);
    const jobs = openSiteQueue(state, firstDataCenter(state.topology));
    try {
      const manifest = await seed({ target: target.origin, users: o.users, photos: o.users, follows: 10, seed: 1 });
      uploads.push(await uploadBurst(state, target.origin, manifest, image, db, jobs, preset, o));
      if (o.uploadsOnly) continue;
      for (const row of await cpuPerRequest(state, target.origin, manifest, image, jobs, db, o.log)) {
        cpu.push({ ...row, preset });
      }
      if (preset === o.presets.at(-1)) {
        if (o.profile) {
          for (const [kind, next] of requestKinds(manifest, image).filter(([k]) => !k.startsWith('cached'))) {
            o.log(`profiling ${kind} in a web server of its own (--cpu-prof)`);
            profiles.push(await profileKind(state, kind, next, { seconds: 10, warmupSeconds: 3 }));
          }
        }
      }
    } finally {
      await jobs?.close();
      await db.end();
      await target.stop();
    }
  }
  return { uploads, cpu, profiles };
}

async function uploadBurst(
  state: ClusterState,
  origin: string,
  manifest: SeedManifest,
  image: Buffer,
  db: pg.Pool,
  jobs: ReturnType<typeof openSiteQueue>,
  preset: string,
  o: QueueBenchOptions,
): Promise<UploadRunRow> {
  const ids: string[] = [];
  const workerCounts: (number | null)[] = [];
  const depths: (number | null)[] = [];
  const started = Date.now();
  const sampler = setInterval(() => {
    const second = Math.floor((Date.now() - started) / 1000);
    workerCounts[second] = workers(loadState(state.runDir).topology).length;
    void jobs?.depth().then((d) => {
      depths[second] = d.waiting + d.active;
    });
  }, 1000);
  const n = manifest.users.length;
  o.log(`${preset}: ${o.uploadRate} uploads/s and ${o.readRate} feed reads/s for ${o.seconds} s`);
  let uploadsRun: Awaited<ReturnType<typeof openLoop>>;
  let readsRun: Awaited<ReturnType<typeof openLoop>>;
  try {
    [uploadsRun, readsRun] = await Promise.all([
      openLoop({
        origin,
        rate: o.uploadRate,
        seconds: o.seconds,
        connections: 64,
        next: (i) => uploadRequest(image, manifest.tokens[i % n] as string, `burst ${i}`, (id) => ids.push(id)),
      }),
      openLoop({
        origin,
        rate: o.readRate,
        seconds: o.seconds,
        connections: 64,
        next: (i) => ({ path: '/api/v1/feed', headers: { authorization: `Bearer ${manifest.tokens[i % n]}` } }),
      }),
    ]);
    // Every accepted photo ready (or 5 minutes): the queue drains after the burst.
    const deadline = Date.now() + 300_000;
    while (Date.now() < deadline && (await timesToReady(db, ids)).pending > 0)
      await new Promise((r) => setTimeout(r, 500));
  } finally {
    clearInterval(sampler);
  }
  const ready = await timesToReady(db, ids);
  const out = path.join(o.out, `uploads-${preset}`);
  const seconds = Array.from({ length: workerCounts.length }, (_, t) => t);
  await writeReports(out, {
    ...loadReport(
      {
        scenario: `${o.uploadRate} uploads/s (2000 × 1500 JPEG) beside ${o.readRate} feed reads/s, on ${preset}`,
        target: origin,
        rate: o.uploadRate,
        durationSeconds: o.seconds,
        connections: 64,
      },
      uploadsRun,
      ids.length,
    ),
    charts: jobs
      ? [
          {
            title: 'workers (the queue-depth autoscaler)',
            series: { workers: seconds.map((t) => workerCounts[t] ?? null) },
          },
          { title: 'queue depth (jobs ready or running)', series: { jobs: seconds.map((t) => depths[t] ?? null) } },
        ]
      : undefined,
  });
  const counted = (xs: (number | null)[]) => xs.filter((x): x is number => typeof x === 'number');
  return {
    preset,
    uploads: {
      sent: uploadsRun.sent,
      accepted: ids.length,
      p50: uploadsRun.latencyMs.p50,
      p99: uploadsRun.latencyMs.p99,
    },
    reads: { sent: readsRun.sent, ok: readsRun.completed, p50: readsRun.latencyMs.p50, p99: readsRun.latencyMs.p99 },
    timeToReadyMs: { ...percentiles(ready.ms), ready: ready.ready, pending: ready.pending },
    maxWorkers: jobs ? Math.max(0, ...counted(workerCounts)) : null,
    maxDepth: jobs ? Math.max(0, ...counted(depths)) : null,
    report: `${out}/report.html`,
  };
}

// ---- CPU per request, per tier ----

/** Clock ticks per second of /proc's utime and stime (Linux: 100). */
const ticksPerSecond = 100;

/** Every process's parent and CPU time (ms), from /proc. */
function processTable(): Map<number, { ppid: number; cpuMs: number }> {
  const table = new Map<number, { ppid: number; cpuMs: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(fields[1]);
      const ticks = Number(fields[11]) + Number(fields[12]);
      table.set(Number(entry), { ppid, cpuMs: (ticks * 1000) / ticksPerSecond });
    } catch {
      // gone
    }
  }
  return table;
}

/** The tier a process's CPU is counted in (with its descendants: Patroni's PostgreSQL, varnishd's cache process). */
const tierOfKind: Record<string, string> = {
  web: 'web',
  worker: 'worker',
  patroni: 'PostgreSQL',
  postgres: 'PostgreSQL',
  redis: 'Redis',
  redisSentinel: 'Redis',
  loadBalancer: 'HAProxy',
  dbProxy: 'HAProxy',
  varnish: 'Varnish',
};
const tiersShown = ['web', 'worker', 'PostgreSQL', 'Redis', 'HAProxy', 'Varnish', 'other'];

/** CPU ms of each tier now: each process of the state with all its descendants. */
function cpuByTier(state: ClusterState): Record<string, number> {
  const table = processTable();
  const children = new Map<number, number[]>();
  for (const [pid, p] of table) children.set(p.ppid, [...(children.get(p.ppid) ?? []), pid]);
  const counted = new Set<number>();
  const treeMs = (pid: number): number => {
    let ms = 0;
    const stack = [pid];
    while (stack.length > 0) {
      const p = stack.pop() as number;
      if (counted.has(p)) continue;
      counted.add(p);
      ms += table.get(p)?.cpuMs ?? 0;
      stack.push(...(children.get(p) ?? []));
    }
    return ms;
  };
  const current = loadState(state.runDir);
  const out: Record<string, number> = Object.fromEntries(tiersShown.map((t) => [t, 0]));
  const specs = new Map(allProcesses(current.topology).map((s) => [s.name, s]));
  for (const p of current.processes) {
    // The supervisor is the parent of every process: only its own time.
    let ms = p.kind === 'supervisor' ? (table.get(p.pid)?.cpuMs ?? 0) : treeMs(p.pid);
    // What runs apart from its process (Patroni's postmaster is re-parented to init): counted with it.
    const spec = specs.get(p.name);
    for (const left of (spec && componentOf(spec).leftovers?.(spec as never, { runDir: state.runDir })) ?? []) {
      ms += treeMs(left.pid);
    }
    const tier = tierOfKind[p.kind] ?? 'other';
    out[tier] = (out[tier] ?? 0) + ms;
  }
  return out;
}

export interface CpuRow {
  preset?: string;
  kind: string;
  requests: number;
  ok: number;
  /** CPU ms per request in each tier, the idle rate over the same time taken off. */
  msPerRequest: Record<string, number>;
}

/**
 * What one request of each kind costs in CPU in each tier: each kind alone,
 * closed loop with 8 connections for 10 s, the CPU time of every process of
 * the topology (with its children) before and after (uploads: until no
 * photo is processing, so the image work is in, wherever it runs), less what the idle
 * topology burns in as long (measured first), over the requests answered.
 */
export async function cpuPerRequest(
  state: ClusterState,
  origin: string,
  manifest: SeedManifest,
  image: Buffer,
  jobs: ReturnType<typeof openSiteQueue>,
  db: pg.Pool,
  log: (line: string) => void,
): Promise<CpuRow[]> {
  // Until no photo is processing (in a worker or in a web server's own queue) and the shared queue is empty.
  const quiet = async () => {
    for (let i = 0; i < 600; i++) {
      const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM photos WHERE status = 'processing'`);
      const d = jobs ? await jobs.depth() : { waiting: 0, active: 0 };
      if (Number(rows[0]?.n ?? 0) === 0 && d.waiting + d.active === 0) return;
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  // Both tiers held where they are (2 web servers, 2 workers): no autoscaling during the measurement.
  if (jobs) await callSupervisor(state, 'POST', '/scale', { worker: 2 });
  await callSupervisor(state, 'POST', '/scale', { web: 2 });
  const kinds = requestKinds(manifest, image);
  await quiet();
  const idleSeconds = 10;
  const idleBefore = cpuByTier(state);
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const idleAfter = cpuByTier(state);
  const idleRate = Object.fromEntries(
    tiersShown.map((t) => [t, ((idleAfter[t] ?? 0) - (idleBefore[t] ?? 0)) / idleSeconds]),
  );
  const rows: CpuRow[] = [];
  for (const [kind, next] of kinds) {
    const before = cpuByTier(state);
    const t0 = Date.now();
    const run = await closedLoop({ origin, seconds: 10, connections: 8, next });
    await quiet();
    const seconds = (Date.now() - t0) / 1000;
    const after = cpuByTier(state);
    const msPerRequest = Object.fromEntries(
      tiersShown.map((t) => {
        const used = (after[t] ?? 0) - (before[t] ?? 0) - (idleRate[t] ?? 0) * seconds;
        return [t, Math.max(0, Math.round((used / Math.max(1, run.completed)) * 100) / 100)];
      }),
    );
    rows.push({ kind, requests: run.sent, ok: run.completed, msPerRequest });
    log(`cpu: ${kind}: ${run.completed} answered; ms per request ${JSON.stringify(msPerRequest)}`);
  }
  return rows;
}

/** One request of each kind the CPU table and the profiles measure, by name. */
export function requestKinds(manifest: SeedManifest, image: Buffer): [string, (i: number) => RequestSpec][] {
  const n = manifest.users.length;
  const random = mulberry32(3);
  const anyUser = () => Math.floor(random() * n);
  const token = (u: number) => manifest.tokens[u] as string;
  const auth = (u: number) => ({ authorization: `Bearer ${token(u)}` });
  const photo = manifest.photoIds[0] as string;
  // Unique in every call (the CPU table and each profile run sign up their own accounts).
  const run = randomBytes(3).toString('hex');
  let signups = 0;
  return [
    ['cached read (a photo)', () => ({ path: `/api/v1/photos/${photo}`, headers: auth(anyUser()) })],
    ['feed page', () => ({ path: '/api/v1/feed', headers: auth(anyUser()) })],
    [
      'like',
      () => ({
        method: 'PUT',
        path: `/api/v1/photos/${manifest.photoIds[Math.floor(random() * manifest.photoIds.length)]}/like`,
        headers: auth(anyUser()),
      }),
    ],
    [
      'follow',
      () => {
        const [a, b] = [anyUser(), anyUser()];
        return {
          method: 'PUT',
          path: `/api/v1/users/${manifest.users[b === a ? (b + 1) % n : b]}/follow`,
          headers: auth(a),
        };
      },
    ],
    ['upload (2000 × 1500 JPEG)', (i) => uploadRequest(image, token(i % n), `cpu ${i}`, () => {})],
    [
      'sign-up',
      () => ({
        method: 'POST',
        path: '/api/v1/users',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: `cpu${run}x${signups++}`, password: manifest.password }),
      }),
    ],
  ];
}

export function queueTables(r: { uploads: UploadRunRow[]; cpu: CpuRow[]; profiles: KindProfile[] }): string {
  const up = [
    '| preset | uploads accepted / sent | upload p50 / p99 (ms) | feed reads ok / sent | read p50 / p99 (ms) | upload → ready p50 / p90 / p99 / max (ms) | ready / pending | workers max | queue depth max | report |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...r.uploads.map(
      (u) =>
        `| ${u.preset} | ${u.uploads.accepted} / ${u.uploads.sent} | ${u.uploads.p50} / ${u.uploads.p99} | ${u.reads.ok} / ${u.reads.sent} | ${u.reads.p50} / ${u.reads.p99} | ${u.timeToReadyMs.p50} / ${u.timeToReadyMs.p90} / ${u.timeToReadyMs.p99} / ${u.timeToReadyMs.max} | ${u.timeToReadyMs.ready} / ${u.timeToReadyMs.pending} | ${u.maxWorkers ?? '-'} | ${u.maxDepth ?? '-'} | ${u.report} |`,
    ),
  ].join('\n');
  const cpu = [
    `| preset | request (CPU ms per request) | answered | ${tiersShown.join(' | ')} | total |`,
    `|---|---|---:|${tiersShown.map(() => '---:').join('|')}|---:|`,
    ...r.cpu.map((c) => {
      const total = tiersShown.reduce((a, t) => a + (c.msPerRequest[t] ?? 0), 0);
      return `| ${c.preset ?? ''} | ${c.kind} | ${c.ok} | ${tiersShown.map((t) => c.msPerRequest[t] ?? 0).join(' | ')} | ${Math.round(total * 100) / 100} |`;
    }),
  ].join('\n');
  return [up, ...(r.cpu.length ? [cpu] : []), ...(r.profiles.length ? [profileTables(r.profiles)] : [])].join('\n\n');
}
