import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { retryWaitMs } from '../../src/bench/load.ts';
import { isAlive } from '../../src/cluster/process.ts';
import { down, leftovers, up } from '../../src/cluster/run/index.ts';
import { buildPreset, type PresetName, type PresetOptions, type Topology } from '../../src/cluster/topology/index.ts';
import { loadTestLimits } from '../../src/config.ts';
import { nextTopologyAddress } from './addresses.ts';

export const clusterWebEnv = { ...loadTestLimits, SCALEOUT_LOG_LEVEL: 'info' };

/** A real topology with a unique name, its own 127.x addresses and its own run root. */
export function startTopology(
  preset: PresetName,
  options: PresetOptions = {},
  webEnv: Record<string, string> = clusterWebEnv,
) {
  return startTopologyOf((at) => buildPreset(preset, { ...at, ...options }), webEnv);
}

/** A topology `build` makes from a unique name and free addresses (a preset, or one written out by a test). */
export async function startTopologyOf(
  build: (at: { name: string; octet: number; port: number }) => Topology,
  webEnv: Record<string, string> = clusterWebEnv,
) {
  const runRoot = mkdtempSync(path.join(os.tmpdir(), 'scaleout-cluster-'));
  const name = `t-${randomBytes(3).toString('hex')}`;
  const { octet, port } = nextTopologyAddress();
  const topology = build({ name, octet, port });
  const state = await up(topology, { runRoot, webEnv });
  return {
    state,
    runRoot,
    url: state.publicUrl,
    /** Stops the topology; returns whatever of it still runs (its processes, and PostgreSQL servers Patroni left). */
    async stop() {
      await down(state, { purge: false });
      const left = [
        ...state.processes.filter((p) => isAlive(p.pid)),
        ...leftovers(state).map((p) => ({ name: p.name, pid: p.pid })),
      ];
      // SCALEOUT_TEST_KEEP_RUNS=1 keeps the run root (its logs) to read after a failure.
      if (process.env.SCALEOUT_TEST_KEEP_RUNS === '1') console.log(`kept the run root ${runRoot}`);
      else rmSync(runRoot, { recursive: true, force: true });
      return left;
    },
  };
}

export interface LoadReport {
  sent: number;
  ok: number;
  failures: { at: number; what: string }[];
  /** Answers shed by admission control (503 OVERLOADED with Retry-After), each sent again after it. */
  shed: number;
  /** ms since the start of each shed answer. */
  shedTimes: number[];
  /** ms since the start of each success, for outage measurement. */
  okTimes: number[];
  /** How long each success took, ms. */
  latencies: number[];
}

/** How many of `times` (ms) fall in each second: index k counts [k s, k+1 s). */
export const perSecond = (times: number[]): number[] => {
  const counts: number[] = [];
  for (const t of times) {
    const k = Math.floor(t / 1000);
    while (counts.length <= k) counts.push(0);
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return counts;
};

/** The q-quantile (0..1) of a list of numbers. */
export const quantile = (xs: number[], q: number): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
};

/** Attempts of one request that admission control shed, at most (each waits its Retry-After, doubled each time). */
const maxShedRetries = 10;
/** The longest wait between two attempts of a shed request. */
const maxShedWaitMs = 8_000;

/**
 * Sends `make(i)` at a fixed rate for `ms` (bounded in count and time), each
 * request with its own timeout; counts every non-2xx and network error. A
 * request shed by admission control (503 `OVERLOADED` with Retry-After: it
 * reached no handler, so any method is safe to send again) is sent again
 * after its Retry-After (doubled at each attempt, with jitter: requests shed
 * together must not all come back in the same second), as a well-behaved
 * client does, and counted in `shed`;
 * any other 503 is a failure.
 */
export async function steadyLoad(
  make: (i: number) => { url: string; init?: RequestInit; ok?: (status: number) => boolean },
  opts: { ratePerSecond: number; ms: number; timeoutMs?: number; onOk?: (i: number, body: unknown) => void },
): Promise<LoadReport> {
  const report: LoadReport = { sent: 0, ok: 0, failures: [], shed: 0, shedTimes: [], okTimes: [], latencies: [] };
  const start = Date.now();
  const pending: Promise<void>[] = [];
  const total = Math.floor((opts.ratePerSecond * opts.ms) / 1000);
  const attempt = async (
    url: string,
    init: RequestInit | undefined,
    tries: number,
  ): Promise<Response & { text_: string }> => {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(opts.timeoutMs ?? 20_000) });
    const text = await res.text();
    const retryAfter = Number(res.headers.get('retry-after'));
    if (res.status === 503 && text.includes('"OVERLOADED"') && retryAfter > 0 && tries < maxShedRetries) {
      report.shed++;
      report.shedTimes.push(Date.now() - start);
      await new Promise((r) => setTimeout(r, retryWaitMs(tries, retryAfter, 0, maxShedWaitMs)));
      return attempt(url, init, tries + 1);
    }
    return Object.assign(res, { text_: text });
  };
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / opts.ratePerSecond;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const { url, init, ok } = make(i);
    report.sent++;
    const sentAt = Date.now();
    pending.push(
      attempt(url, init, 0)
        .then(async (res) => {
          const text = res.text_;
          if ((ok ?? ((s: number) => s >= 200 && s < 300))(res.status)) {
            report.ok++;
            report.latencies.push(Date.now() - sentAt);
            report.okTimes.push(Date.now() - start);
            opts.onOk?.(i, text ? JSON.parse(text) : undefined);
          } else report.failures.push({ at: Date.now() - start, what: `HTTP ${res.status} ${text.slice(0, 120)}` });
        })
        .catch((err: Error) => {
          report.failures.push({ at: Date.now() - start, what: err.message });
        }),
    );
  }
  await Promise.all(pending);
  return report;
}

export const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
});
