import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBalancerConfig, startHaproxy } from '../cluster/components/load-balancer/haproxy.ts';
import { httpStatus, stopProcess, waitUntil } from '../cluster/process.ts';
import type { PresetName } from '../cluster/topology/index.ts';
import { type EndpointRow, measure } from './endpoints.ts';
import { startNode } from './processes.ts';
import { seed } from './seed.ts';
import { startPreset } from './targets.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface TopologyBenchOptions {
  /** Only these presets (all when unset); the hello-world baselines always run. */
  presets?: string[];
  seconds: number;
  connections: number;
  loadFraction: number;
  users: number;
  photos: number;
  log: (line: string) => void;
}

export interface TopologyRow extends EndpointRow {
  topology: string;
}

const cases: { label: string; preset: PresetName; webServers?: number }[] = [
  { label: 'single', preset: 'single' },
  { label: 'db', preset: 'db' },
  { label: 'lb, 1 web server', preset: 'lb', webServers: 1 },
  { label: 'lb, 2 web servers', preset: 'lb', webServers: 2 },
  { label: 'cache, 2 web servers', preset: 'cache', webServers: 2 },
];

/** A Fastify hello-world on `count` servers behind an HAProxy rendered from the same template as `lb`'s. */
async function baseline(
  runDir: string,
  octet: number,
  count: number,
  opts: TopologyBenchOptions,
): Promise<TopologyRow> {
  const webs = Array.from({ length: count }, (_, i) => ({
    kind: 'web' as const,
    name: `hello-${i + 1}`,
    listen: { host: `127.${octet}.1.${i + 1}`, port: 3000 },
    db: 'pglite' as const,
  }));
  const lb = {
    kind: 'loadBalancer' as const,
    name: `baseline-lb-${count}`,
    listen: { host: `127.${octet}.0.1`, port: 8080 },
    stats: { host: `127.${octet}.1.100`, port: 8404 },
  };
  const hellos = webs.map((w) =>
    startNode([path.join(root, 'src/bench/hello.ts'), String(w.listen.port), w.listen.host]),
  );
  try {
    for (const w of webs)
      await waitUntil(async () => (await httpStatus(`http://${w.listen.host}:3000/readyz`)) === 200, 30_000);
    const proxy = await startHaproxy(
      lb.name,
      loadBalancerConfig(lb, webs, webs, {
        runDir,
        maxConnectionsPerClient: 4096,
        // The ceiling of the balancer itself: no admission control in the way.
        maxRequestsPerServer: 1000,
        queueTimeoutMs: 10_000,
        queueDepthPerServer: 0,
      }),
      runDir,
      lb.listen,
    );
    try {
      const origin = `http://${lb.listen.host}:${lb.listen.port}`;
      await waitUntil(async () => (await httpStatus(`${origin}/`)) === 200, 15_000);
      const row = await measure(
        { name: `hello-world ×${count} behind HAProxy`, origin, next: () => ({ path: '/' }) },
        opts,
      );
      return { ...row, topology: `baseline (${count} server${count > 1 ? 's' : ''})` };
    } finally {
      await stopProcess(proxy.pid);
    }
  } finally {
    await Promise.all(hellos.map((h) => h.stop()));
  }
}

/**
 * The same two reads on each preset, beside a hello-world behind the same
 * HAProxy: GET /api/v1/photos/{id} and GET /api/v1/feed as a logged-in user
 * who follows 50 people with 500 photos between them.
 */
export async function benchTopologies(opts: TopologyBenchOptions): Promise<TopologyRow[]> {
  const runRoot = await mkdtemp(path.join(os.tmpdir(), 'scaleout-bench-'));
  const rows: TopologyRow[] = [];
  try {
    await mkdir(path.join(runRoot, 'baseline', 'logs'), { recursive: true });
    for (const count of [1, 2]) rows.push(await baseline(path.join(runRoot, 'baseline'), 230 + count, count, opts));
    for (const c of cases.filter((x) => !opts.presets || opts.presets.includes(x.preset))) {
      opts.log(`starting ${c.label}`);
      const target = await startPreset(c.preset, {
        name: `bench-${c.preset}-${c.webServers ?? 1}`,
        webServers: c.webServers,
        port: 8080,
      });
      const { state } = target;
      try {
        const manifest = await seed({
          target: state.publicUrl,
          users: opts.users,
          photos: opts.photos,
          follows: opts.users - 1,
          seed: 1,
          log: opts.log,
        });
        const auth = { authorization: `Bearer ${manifest.viewer.token}` };
        const photo = (i: number) => manifest.photoIds[(i * 7919) % manifest.photoIds.length];
        for (const t of [
          {
            name: 'GET /api/v1/photos/{id}',
            next: (i: number) => ({ path: `/api/v1/photos/${photo(i)}`, headers: auth }),
          },
          { name: 'GET /api/v1/feed', next: () => ({ path: '/api/v1/feed', headers: auth }) },
        ]) {
          rows.push({ ...(await measure({ ...t, origin: state.publicUrl }, opts)), topology: c.label });
        }
      } finally {
        await target.stop();
      }
    }
    return rows;
  } finally {
    await rm(runRoot, { recursive: true, force: true });
  }
}

export function topologyTable(rows: TopologyRow[]): string {
  const errors = (r: EndpointRow) =>
    [...Object.values(r.peak.errors), ...Object.values(r.open.errors)].reduce((a, b) => a + b, 0);
  return [
    '| topology | endpoint | peak req/s | open-loop rate | p50 ms | p99 ms | max ms | errors |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.topology} | ${r.name} | ${r.peak.throughput} | ${r.open.targetRate} | ${r.open.latencyMs.p50} | ${r.open.latencyMs.p99} | ${r.open.latencyMs.max} | ${errors(r)} |`,
    ),
  ].join('\n');
}
