import * as hdr from 'hdr-histogram-js';
import { Pool } from 'undici';

export interface RequestSpec {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface LoadResult {
  mode: 'open' | 'closed';
  /** Requests per second that were asked for (open loop only). */
  targetRate?: number;
  seconds: number;
  completed: number;
  errors: Record<string, number>;
  throughput: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
}

const micros = () => Number(process.hrtime.bigint() / 1000n);

function summary(h: hdr.Histogram) {
  const ms = (us: number) => Math.round(us / 10) / 100;
  return {
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
  };
}

async function send(pool: Pool, spec: RequestSpec): Promise<string | null> {
  try {
    const res = await pool.request({
      method: spec.method ?? 'GET',
      path: spec.path,
      headers: spec.headers,
      body: spec.body,
    });
    await res.body.dump();
    return res.statusCode >= 400 ? `http_${res.statusCode}` : null;
  } catch (err) {
    return (err as { code?: string }).code ?? 'network';
  }
}

/**
 * Open loop, as wrk2 does: request i is due at start + i/rate whatever happened
 * to earlier ones, and its latency counts from that due time. A server that
 * falls behind therefore shows its queueing delay instead of hiding it
 * (no coordinated omission).
 */
export async function openLoop(opts: {
  origin: string;
  rate: number;
  seconds: number;
  connections: number;
  next: (i: number) => RequestSpec;
}): Promise<LoadResult> {
  const pool = new Pool(opts.origin, { connections: opts.connections, pipelining: 1 });
  const histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const errors: Record<string, number> = {};
  const total = Math.floor(opts.rate * opts.seconds);
  const start = micros();
  const inflight = new Set<Promise<void>>();
  let completed = 0;
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1_000_000) / opts.rate;
    const wait = due - micros();
    if (wait > 1000) await new Promise((r) => setTimeout(r, wait / 1000));
    const p = send(pool, opts.next(i)).then((error) => {
      histogram.recordValue(Math.max(1, micros() - due));
      if (error) errors[error] = (errors[error] ?? 0) + 1;
      else completed++;
      inflight.delete(p);
    });
    inflight.add(p);
  }
  await Promise.all(inflight);
  const seconds = (micros() - start) / 1e6;
  await pool.close();
  return {
    mode: 'open',
    targetRate: opts.rate,
    seconds,
    completed,
    errors,
    throughput: Math.round(completed / seconds),
    latencyMs: summary(histogram),
  };
}

/** Closed loop: each connection sends its next request when the last answer came. Measures peak throughput. */
export async function closedLoop(opts: {
  origin: string;
  seconds: number;
  connections: number;
  next: (i: number) => RequestSpec;
}): Promise<LoadResult> {
  const pool = new Pool(opts.origin, { connections: opts.connections, pipelining: 1 });
  const histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const errors: Record<string, number> = {};
  const start = micros();
  const end = start + opts.seconds * 1e6;
  let i = 0;
  let completed = 0;
  const worker = async () => {
    while (micros() < end) {
      const sent = micros();
      const error = await send(pool, opts.next(i++));
      histogram.recordValue(Math.max(1, micros() - sent));
      if (error) errors[error] = (errors[error] ?? 0) + 1;
      else completed++;
    }
  };
  await Promise.all(Array.from({ length: opts.connections }, worker));
  const seconds = (micros() - start) / 1e6;
  await pool.close();
  return {
    mode: 'closed',
    seconds,
    completed,
    errors,
    throughput: Math.round(completed / seconds),
    latencyMs: summary(histogram),
  };
}
