import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { closedLoop, type LoadResult, openLoop, type RequestSpec } from './load.ts';
import { seed } from './seed.ts';
import { startHello, startSingle } from './targets.ts';

const _root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface EndpointBenchOptions {
  seconds: number;
  connections: number;
  /** The open-loop rate, as a fraction of each endpoint's measured peak. */
  loadFraction: number;
  log: (line: string) => void;
}

export interface EndpointRow {
  name: string;
  peak: LoadResult;
  open: LoadResult;
}

/**
 * The single-server benchmark: scaleout (`single`, in its own process) and a
 * Fastify hello-world, both on loopback, measured in the same run. For each
 * endpoint: the peak throughput (closed loop), then latency under an open-loop
 * load at a fraction of that peak.
 */
export async function benchEndpoints(opts: EndpointBenchOptions): Promise<EndpointRow[]> {
  const [app, hello] = await Promise.all([startSingle(), startHello()]);
  try {
    const appOrigin = app.origin;
    const helloOrigin = hello.origin;
    opts.log('seeding: 51 users, the viewer follows 50, 500 photos');
    const manifest = await seed({ target: appOrigin, users: 51, photos: 500, follows: 50, seed: 1, log: opts.log });
    const auth = { authorization: `Bearer ${manifest.viewer.token}` };
    const pick = <T>(list: T[], i: number) => list[(i * 7919) % list.length] as T;

    const targets: Target[] = [
      { name: 'Fastify hello-world (baseline)', origin: helloOrigin, next: () => ({ path: '/' }) },
      {
        name: 'GET /api/v1/users/{username}',
        origin: appOrigin,
        next: (i) => ({ path: `/api/v1/users/${pick(manifest.users, i)}` }),
      },
      {
        name: 'GET /api/v1/photos/{id}',
        origin: appOrigin,
        next: (i) => ({ path: `/api/v1/photos/${pick(manifest.photoIds, i)}`, headers: auth }),
      },
      { name: 'GET /api/v1/feed', origin: appOrigin, next: () => ({ path: '/api/v1/feed', headers: auth }) },
    ];
    const rows: EndpointRow[] = [];
    for (const t of targets) rows.push(await measure(t, opts));
    return rows;
  } finally {
    await Promise.all([app.stop(), hello.stop()]);
  }
}

export interface Target {
  name: string;
  origin: string;
  next: (i: number) => RequestSpec;
}

/** 2 s warm-up, the closed-loop peak, then latency under an open loop at a fraction of that peak. */
export async function measure(
  t: Target,
  opts: { seconds: number; connections: number; loadFraction: number; log: (l: string) => void },
): Promise<EndpointRow> {
  await closedLoop({ origin: t.origin, seconds: 2, connections: opts.connections, next: t.next });
  const peak = await closedLoop({
    origin: t.origin,
    seconds: opts.seconds,
    connections: opts.connections,
    next: t.next,
  });
  const rate = Math.max(1, Math.round(peak.throughput * opts.loadFraction));
  const open = await openLoop({
    origin: t.origin,
    rate,
    seconds: opts.seconds,
    connections: opts.connections * 4,
    next: t.next,
  });
  opts.log(
    `${t.name}: peak ${peak.throughput} req/s; at ${rate} req/s p50 ${open.latencyMs.p50} ms, p99 ${open.latencyMs.p99} ms`,
  );
  return { name: t.name, peak, open };
}

export function endpointTable(rows: EndpointRow[]): string {
  const base = rows[0]?.peak.throughput ?? 1;
  const errors = (r: LoadResult) => Object.values(r.errors).reduce((a, b) => a + b, 0);
  const lines = [
    '| endpoint | peak req/s (closed loop) | vs hello-world | open-loop rate | p50 ms | p90 ms | p99 ms | max ms | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.peak.throughput} | ${(r.peak.throughput / base).toFixed(3)} | ${r.open.targetRate} | ${r.open.latencyMs.p50} | ${r.open.latencyMs.p90} | ${r.open.latencyMs.p99} | ${r.open.latencyMs.max} | ${errors(r.peak) + errors(r.open)} |`,
    ),
  ];
  return lines.join('\n');
}
