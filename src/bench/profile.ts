import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { siteEnv } from '../cluster/run/context.ts';
import type { ClusterState } from '../cluster/run/state.ts';
import { firstDataCenter } from '../cluster/topology/select.ts';
import { renderEnv } from '../config.ts';
import { closedLoop, type RequestSpec } from './load.ts';
import { freePort, startNode, waitHealthy } from './processes.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: a package of node_modules, a folder of src/, Node's own, or V8's. */
export function placeOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  const src = /\/src\/([^/]+)(?:\/([^/]+))?/.exec(url);
  if (src) return src[2] && !src[2].includes('.') ? `src/${src[1]}/${src[2]}` : `src/${src[1]}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  return url;
}

export interface ProfileSummary {
  /** Busy CPU time in the profile (all but idle), ms. */
  busyMs: number;
  byPlace: { place: string; ms: number; share: number }[];
  topFunctions: { name: string; place: string; ms: number }[];
}

/** Self time by place and by function, from the samples' time deltas (idle left out). */
export function summarizeProfile(p: CpuProfile): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  p.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  const places = new Map<string, number>();
  const functions = new Map<string, { place: string; us: number }>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n || n.callFrame.functionName === '(idle)') continue;
    busy += us;
    const place = placeOf(n.callFrame.url, n.callFrame.functionName);
    places.set(place, (places.get(place) ?? 0) + us);
    const name = `${n.callFrame.functionName || '(anonymous)'} ${path.basename(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
    const f = functions.get(name) ?? { place, us: 0 };
    f.us += us;
    functions.set(name, f);
  }
  const ms = (us: number) => Math.round(us / 10) / 100;
  return {
    busyMs: ms(busy),
    byPlace: [...places]
      .sort((a, b) => b[1] - a[1])
      .map(([place, us]) => ({ place, ms: ms(us), share: Math.round((us / Math.max(1, busy)) * 1000) / 10 })),
    topFunctions: [...functions]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, 15)
      .map(([name, f]) => ({ name, place: f.place, ms: ms(f.us) })),
  };
}

export interface KindProfile {
  kind: string;
  requests: number;
  ok: number;
  /** Busy CPU of the profiled web server per request, ms (its start and idle time left out: see `measuredFrom`). */
  msPerRequest: number;
  summary: ProfileSummary;
}

/**
 * One kind of request profiled in a web server of a running topology: a web
 * server of its own (the topology's web environment, a free port, outside
 * the balancer) under `--cpu-prof`, warmed up, then `requests` of the kind
 * sent straight to it (closed loop, 4 connections); the profile is written
 * when it exits. The profile covers the whole process, so a second, idle
 * server profiled over a run without the kind's requests gives the baseline
 * (start, warm-up, background probes) that is taken off.
 */
export async function profileKind(
  state: ClusterState,
  kind: string,
  next: (i: number) => RequestSpec,
  o: { seconds: number; warmupSeconds: number },
): Promise<KindProfile> {
  const run = async (load: boolean) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'scaleout-profile-'));
    const port = await freePort();
    const env = {
      ...siteEnv(state, firstDataCenter(state.topology), 'web'),
      ...renderEnv({ host: '127.0.0.1', port, metricsPort: 0, dataDir: dir, logLevel: 'warn', db: 'postgres' }),
      NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}`,
    };
    const web = startNode([path.join(root, 'bin/scaleout.js'), 'start'], env);
    try {
      const origin = `http://127.0.0.1:${port}`;
      await waitHealthy(`${origin}/readyz`, 60_000, web);
      // The same warm-up either way (JIT, pools, caches), then the kind's requests, or as long idle.
      await closedLoop({ origin, seconds: o.warmupSeconds, connections: 4, next });
      let result: Awaited<ReturnType<typeof closedLoop>> | null = null;
      if (load) result = await closedLoop({ origin, seconds: o.seconds, connections: 4, next });
      else await new Promise((r) => setTimeout(r, o.seconds * 1000));
      await web.stop();
      const file = (await readdir(dir)).find((f) => f.endsWith('.cpuprofile'));
      if (!file) throw new Error(`no profile written in ${dir}`);
      const profile = JSON.parse(await readFile(path.join(dir, file), 'utf8')) as CpuProfile;
      return { result, summary: summarizeProfile(profile) };
    } finally {
      await web.stop();
      await rm(dir, { recursive: true, force: true });
    }
  };
  const idle = await run(false);
  const loaded = await run(true);
  const ok = loaded.result?.completed ?? 0;
  return {
    kind,
    requests: loaded.result?.sent ?? 0,
    ok,
    msPerRequest: Math.round(((loaded.summary.busyMs - idle.summary.busyMs) / Math.max(1, ok)) * 100) / 100,
    summary: loaded.summary,
  };
}

export function profileTables(rows: KindProfile[]): string {
  return rows
    .map((r) =>
      [
        `**${r.kind}**: ${r.ok} requests, ${r.msPerRequest} ms of web-server CPU each (profile busy time, an idle run's taken off)`,
        '',
        '| where (self time) | ms | share |',
        '|---|---:|---:|',
        ...r.summary.byPlace.slice(0, 12).map((p) => `| ${p.place} | ${p.ms} | ${p.share} % |`),
        '',
        '| function (self time) | where | ms |',
        '|---|---|---:|',
        ...r.summary.topFunctions.map((f) => `| ${f.name.replace(/\|/g, '\\|')} | ${f.place} | ${f.ms} |`),
      ].join('\n'),
    )
    .join('\n\n');
}
