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

/** Latencies, completions and errors of one measurement. */
class Recorder {
  readonly histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  });
  readonly errors: Record<string, number> = {};
  completed = 0;

  /** Records one answer, its latency counted from `sinceUs`. */
  record(sinceUs: number, error: string | null): void {
    this.histogram.recordValue(Math.max(1, micros() - sinceUs));
    if (error) this.errors[error] = (this.errors[error] ?? 0) + 1;
    else this.completed++;
  }

  result(mode: 'open' | 'closed', seconds: number, targetRate?: number): LoadResult {
    return {
      mode,
      targetRate,
      seconds,
      completed: this.completed,
      errors: this.errors,
      throughput: Math.round(this.completed / seconds),
      latencyMs: summary(this.histogram),
    };
  }
}

const newPool = (origin: string, connections: number) => new Pool(origin, { connections, pipelining: 1 });

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
  const pool = newPool(opts.origin, opts.connections);
  const recorder = new Recorder();
  const total = Math.floor(opts.rate * opts.seconds);
  const start = micros();
  const inflight = new Set<Promise<void>>();
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1_000_000) / opts.rate;
    const wait = due - micros();
    if (wait > 1000) await new Promise((r) => setTimeout(r, wait / 1000));
    const p = send(pool, opts.next(i)).then((error) => {
      recorder.record(due, error);
      inflight.delete(p);
    });
    inflight.add(p);
  }
  await Promise.all(inflight);
  const seconds = (micros() - start) / 1e6;
  await pool.close();
  return recorder.result('open', seconds, opts.rate);
}

/** Closed loop: each connection sends its next request when the last answer came. Measures peak throughput. */
export async function closedLoop(opts: {
  origin: string;
  seconds: number;
  connections: number;
  next: (i: number) => RequestSpec;
}): Promise<LoadResult> {
  const pool = newPool(opts.origin, opts.connections);
  const recorder = new Recorder();
  const start = micros();
  const end = start + opts.seconds * 1e6;
  let i = 0;
  const worker = async () => {
    while (micros() < end) {
      const sent = micros();
      recorder.record(sent, await send(pool, opts.next(i++)));
    }
  };
  await Promise.all(Array.from({ length: opts.connections }, worker));
  const seconds = (micros() - start) / 1e6;
  await pool.close();
  return recorder.result('closed', seconds);
}
