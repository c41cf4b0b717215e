import type { LookupFunction } from 'node:net';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import { Pool } from 'undici';
import { defaultRetryBudget, RetryBudget, type RetryBudgetOptions } from './retry-budget.ts';

export interface RequestSpec {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Called with the answer; when set, the body is read as text. */
  onAnswer?: (status: number, body: string) => void;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export interface TimelinePoint {
  /** Seconds since the start. */
  t: number;
  ok: number;
  errors: number;
  p50: number;
  p99: number;
}

export interface LoadResult {
  mode: 'open' | 'closed';
  /** Requests per second that were asked for (open loop only). */
  targetRate?: number;
  seconds: number;
  sent: number;
  completed: number;
  errors: Record<string, number>;
  /** Writes sent again with their Idempotency-Key (after a reset, a 503, a 409 "still running"). */
  retries: number;
  /** Retries the client's retry budget refused (their requests failed instead). */
  retriesRefused?: number;
  /**
   * Successful answers per second while the load was sent (`seconds` asked,
   * not the tail of retries after it): what the site served.
   */
  goodput: number;
  /** The load generator's own event-loop delay over the run (ms): how late it may have sent. */
  generatorLagMs?: Percentiles;
  throughput: number;
  /** Every answer's latency, errors included. */
  latencyMs: Percentiles;
  /**
   * The latency of the HTTP requests that succeeded (2xx/3xx): a first
   * attempt's from its due time, a retry's from when it was sent.
   */
  servedLatencyMs: Percentiles;
  timeline: TimelinePoint[];
  /**
   * The warm-up before the measured seconds (`warmUpSeconds`), as wrk2's
   * calibration: the same load, its answers kept apart from the numbers above.
   */
  warmUp?: Pick<LoadResult, 'seconds' | 'sent' | 'completed' | 'errors' | 'goodput' | 'latencyMs' | 'servedLatencyMs'>;
}

/**
 * The load generator stands for clients on other machines. On the one machine
 * it shares with the site, it raises its own CPU priority (nice -10, as root),
 * so that its own lateness under the site's load is not counted as the
 * site's latency. Returns the priority it runs at.
 */
export function raiseLoadGeneratorPriority(): number {
  try {
    os.setPriority(-10);
  } catch {
    // Not root: it runs at the priority it was given.
  }
  return os.getPriority();
}

const micros = () => Number(process.hrtime.bigint() / 1000n);
const newHistogram = () =>
  hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });

/** Latencies in microseconds in, percentiles in milliseconds out (HDR histogram, 3 significant digits). */
export class LatencyHistogram {
  readonly #h = newHistogram();
  record(us: number): void {
    this.#h.recordValue(Math.max(1, Math.round(us)));
  }
  get count(): number {
    return this.#h.totalCount;
  }
  summary(): Percentiles {
    const ms = (us: number) => Math.round(us / 10) / 100;
    return {
      p50: ms(this.#h.getValueAtPercentile(50)),
      p90: ms(this.#h.getValueAtPercentile(90)),
      p99: ms(this.#h.getValueAtPercentile(99)),
      p999: ms(this.#h.getValueAtPercentile(99.9)),
      max: ms(this.#h.maxValue),
    };
  }
}

/** Latencies, completions and errors of one measurement, overall and second by second. */
class Recorder {
  readonly overall = new LatencyHistogram();
  /** The answers that succeeded only (a shed request's fast 503 is not a served one). */
  readonly served = new LatencyHistogram();
  readonly errors: Record<string, number> = {};
  readonly #seconds: { ok: number; errors: number; h: LatencyHistogram }[] = [];
  completed = 0;
  sent = 0;
  retries = 0;
  readonly start: number;
  constructor(start: number) {
    this.start = start;
  }

  /** Successful answers that came while the load was being sent (goodput's numerator). */
  servedInWindow = 0;
  windowEndUs = Number.POSITIVE_INFINITY;

  /** One attempt of a request: a success is a served request, its latency from its own start. */
  attempt(startedUs: number, error: string | null, retried: boolean): void {
    const now = micros();
    if (!error) {
      this.served.record(now - startedUs);
      if (now <= this.windowEndUs) this.servedInWindow++;
    }
    if (retried) this.retries++;
  }

  /** Records one answer, its latency counted from `sinceUs`. */
  record(sinceUs: number, error: string | null): void {
    const now = micros();
    this.overall.record(now - sinceUs);
    const second = Math.floor((now - this.start) / 1e6);
    for (let i = this.#seconds.length; i <= second; i++)
      this.#seconds.push({ ok: 0, errors: 0, h: new LatencyHistogram() });
    const bucket = this.#seconds[second] as { ok: number; errors: number; h: LatencyHistogram };
    bucket.h.record(now - sinceUs);
    if (error) {
      this.errors[error] = (this.errors[error] ?? 0) + 1;
      bucket.errors++;
    } else {
      this.completed++;
      bucket.ok++;
    }
  }

  result(mode: 'open' | 'closed', seconds: number, targetRate?: number, windowSeconds = seconds): LoadResult {
    return {
      goodput: Math.round(this.servedInWindow / windowSeconds),
      mode,
      targetRate,
      seconds,
      sent: this.sent,
      completed: this.completed,
      errors: this.errors,
      retries: this.retries,
      throughput: Math.round(this.completed / seconds),
      latencyMs: this.overall.summary(),
      servedLatencyMs: this.served.summary(),
      timeline: this.#seconds.map((b, t) => {
        const s = b.h.count > 0 ? b.h.summary() : { p50: 0, p99: 0 };
        return { t, ok: b.ok, errors: b.errors, p50: s.p50, p99: s.p99 };
      }),
    };
  }
}

/** A pool to the origin; with `lookup`, its host is a name resolved so for each new connection. */
const newPool = (origin: string, connections: number, lookup?: LookupFunction) =>
  new Pool(origin, { connections, pipelining: 1, ...(lookup ? { connect: { lookup } } : {}) });

interface Attempt {
  error: string | null;
  /** A reset, a 503, or a 409 "still running": the same write with its key may be sent again. */
  retryable: boolean;
  /** The answer's Retry-After, in seconds. */
  retryAfter?: number;
}

/** One attempt: its error class (null when it succeeded). */
async function sendOnce(pool: Pool, spec: RequestSpec, willRetry: boolean): Promise<Attempt> {
  try {
    const res = await pool.request({
      method: spec.method ?? 'GET',
      path: spec.path,
      headers: spec.headers,
      body: spec.body,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    const status = res.statusCode;
    const after = res.headers['retry-after'];
    const retryAfter = typeof after === 'string' && /^\d+$/.test(after) ? Number(after) : undefined;
    // A 409 with Retry-After is an Idempotency-Key whose first request still runs (or died holding it);
    // a 502 or 504 is the balancer saying its server died or hung mid-answer: a reset, one hop away.
    const retryable =
      status === 503 || status === 502 || status === 504 || (status === 409 && retryAfter !== undefined);
    if (status === 503) {
      // Shedding says so with Retry-After; a balancer with no server at all says "no server available".
      const text = await res.body.text();
      if (/no server (is )?available/i.test(text)) return { error: 'http_503_no_server', retryable, retryAfter };
      return { error: retryAfter === undefined ? 'http_503_no_retry_after' : 'http_503', retryable, retryAfter };
    }
    if (spec.onAnswer && !(retryable && willRetry)) spec.onAnswer(status, await res.body.text());
    else await res.body.dump();
    return { error: status >= 400 ? `http_${status}` : null, retryable, retryAfter };
  } catch (err) {
    return { error: (err as { code?: string }).code ?? 'network', retryable: true };
  }
}

/** How a write with an Idempotency-Key is sent again after a reset, a 503, or a 409 "still running". */
export interface RetryPolicy {
  /** Attempts after the first. */
  retries: number;
  /**
   * Reads (GET, HEAD) too: a read shed with 503 and Retry-After is sent again
   * after it, as a client that honours Retry-After does (a read is safe to
   * repeat). Off by default: an overload run's reads are shed, not retried.
   */
  reads?: boolean;
  /** The wait before attempt n + 1 is 2ⁿ × this after a reset, 2ⁿ × Retry-After after a 503 or 409, with jitter. */
  backoffMs: number;
  /** No attempt starts once this long has passed since the first (an Idempotency-Key's lease is 5 s). */
  maxMs: number;
  /**
   * The share of requests that may be sent again (see RetryBudget): each run
   * gets a budget of its own. Absent: every retry the rules above allow is made.
   */
  budget?: RetryBudgetOptions;
}

export const defaultRetry: RetryPolicy = { retries: 6, backoffMs: 250, maxMs: 20_000, budget: defaultRetryBudget };

/**
 * The wait before attempt `attempt` + 1 of a shed or reset request: 2^attempt
 * times the Retry-After the server asked for (or `backoffMs` after a reset),
 * with jitter of ×0.5–1.5 so that the requests shed together do not come back
 * together, at most `capMs`.
 */
export const retryWaitMs = (attempt: number, retryAfterS: number | undefined, backoffMs: number, capMs = Infinity) =>
  Math.min(capMs, (retryAfterS !== undefined ? retryAfterS * 1000 : backoffMs) * 2 ** attempt * (0.5 + Math.random()));

/** One run's retry budget, when its policy has one. */
const budgetOf = (retry: RetryPolicy | undefined): RetryBudget | undefined =>
  retry?.budget ? new RetryBudget(retry.budget) : undefined;

/**
 * Sends one request; a write that carries an Idempotency-Key is sent again,
 * with the same key, after a reset, a 503 or a 409 "still running" (the
 * server answers the repeat with the first answer, so it is done once).
 * `onAttempt` sees every attempt's start (µs) and outcome.
 */
async function send(
  pool: Pool,
  spec: RequestSpec,
  retry: RetryPolicy | undefined,
  onAttempt: (startedUs: number, error: string | null, retried: boolean) => void,
  firstStartUs: number,
  budget?: RetryBudget,
): Promise<string | null> {
  const method = spec.method ?? 'GET';
  const safe = method === 'GET';
  const keyed =
    retry !== undefined &&
    retry.retries > 0 &&
    (spec.headers?.['idempotency-key'] !== undefined || (retry.reads === true && safe));
  const started = Date.now();
  budget?.noteSent();
  let startUs = firstStartUs;
  for (let attempt = 0; ; attempt++) {
    const last = !keyed || attempt >= (retry as RetryPolicy).retries;
    const { error, retryable, retryAfter } = await sendOnce(pool, spec, !last);
    const wait = retryWaitMs(attempt, retryAfter, retry?.backoffMs ?? 0);
    // A read is sent again only when the answer asked for it (Retry-After): it was shed before any work.
    const asked = spec.headers?.['idempotency-key'] !== undefined || retryAfter !== undefined;
    const again =
      Boolean(error) &&
      retryable &&
      asked &&
      !last &&
      Date.now() - started + wait <= (retry as RetryPolicy).maxMs &&
      (budget?.tryRetry() ?? true);
    onAttempt(startUs, error, again);
    if (!again) return error;
    await new Promise((r) => setTimeout(r, wait));
    startUs = micros();
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
  onProgress?: (done: number, total: number) => void;
  /** A rate that changes over the run (req/s at t seconds from the start); `rate` is then only reported. */
  rateAt?: (t: number) => number;
  /** Each answer: seconds from the start to its due time, its latency in ms, and its error (null when ok). */
  onAnswer?: (dueSeconds: number, latencyMs: number, error: string | null) => void;
  /** Writes with an Idempotency-Key are retried so (none when absent). */
  retry?: RetryPolicy;
  /** How the origin's host name is resolved for each new connection (a client's DNS; see `siteResolver`). */
  lookup?: LookupFunction;
  /**
   * Seconds of the same load sent before the measured `seconds` (not with
   * `rateAt`), as wrk2 calibrates before it records: the pool's connections
   * are opened and the generator's own code is compiled while nothing is
   * counted. Its answers go to `warmUp`; its writes are in the ledger too.
   */
  warmUpSeconds?: number;
}): Promise<LoadResult> {
  const pool = newPool(opts.origin, opts.connections, opts.lookup);
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const { rateAt } = opts;
  const warmUpSeconds = rateAt ? 0 : (opts.warmUpSeconds ?? 0);
  const warmStart = micros();
  const start = warmStart + warmUpSeconds * 1e6;
  const recorder = new Recorder(start);
  recorder.windowEndUs = start + opts.seconds * 1e6;
  const warm = new Recorder(warmStart);
  warm.windowEndUs = start;
  const budget = budgetOf(opts.retry);
  const warmUpTotal = Math.floor(opts.rate * warmUpSeconds);
  const total = rateAt ? Number.POSITIVE_INFINITY : warmUpTotal + Math.floor(opts.rate * opts.seconds);
  const end = start + opts.seconds * 1e6;
  const inflight = new Set<Promise<void>>();
  let done = 0;
  let due = start;
  for (let i = 0; i < total; i++) {
    if (rateAt) {
      // Each request is due one interval of the rate at the time of the last one after it.
      if (i > 0) due += 1e6 / Math.max(0.1, rateAt((due - start) / 1e6));
      if (due >= end) break;
    } else due = warmStart + (i * 1_000_000) / opts.rate;
    const wait = due - micros();
    if (wait > 1000) await new Promise((r) => setTimeout(r, wait / 1000));
    // The generator's own lateness is measured over the measured seconds only.
    if (i === warmUpTotal && warmUpTotal > 0) lag.reset();
    const into = i < warmUpTotal ? warm : recorder;
    into.sent++;
    const dueAt = due;
    const onAttempt = (t: number, e: string | null, r: boolean) => into.attempt(t, e, r);
    const p = send(pool, opts.next(i), opts.retry, onAttempt, dueAt, budget).then((error) => {
      into.record(dueAt, error);
      if (into === recorder) opts.onAnswer?.((dueAt - start) / 1e6, (micros() - dueAt) / 1000, error);
      inflight.delete(p);
      opts.onProgress?.(++done, total);
    });
    inflight.add(p);
  }
  await Promise.all(inflight);
  const seconds = (micros() - start) / 1e6;
  await pool.close();
  lag.disable();
  const ms = (ns: number) => Math.round(Math.max(0, ns / 1e6 - 10) * 100) / 100;
  const warmUp = (): LoadResult['warmUp'] => {
    const { sent, completed, errors, goodput, latencyMs, servedLatencyMs } = warm.result('open', warmUpSeconds);
    return { seconds: warmUpSeconds, sent, completed, errors, goodput, latencyMs, servedLatencyMs };
  };
  return {
    ...recorder.result('open', seconds, opts.rate, opts.seconds),
    ...(warmUpTotal > 0 ? { warmUp: warmUp() } : {}),
    retriesRefused: budget?.refused,
    generatorLagMs: {
      p50: ms(lag.percentile(50)),
      p90: ms(lag.percentile(90)),
      p99: ms(lag.percentile(99)),
      p999: ms(lag.percentile(99.9)),
      max: ms(lag.max),
    },
  };
}

/** Closed loop: each connection sends its next request when the last answer came. Measures peak throughput. */
export async function closedLoop(opts: {
  origin: string;
  seconds: number;
  connections: number;
  next: (i: number) => RequestSpec;
  retry?: RetryPolicy;
}): Promise<LoadResult> {
  const pool = newPool(opts.origin, opts.connections);
  const start = micros();
  const recorder = new Recorder(start);
  const end = start + opts.seconds * 1e6;
  const budget = budgetOf(opts.retry);
  let i = 0;
  const worker = async () => {
    while (micros() < end) {
      const sent = micros();
      recorder.sent++;
      const onAttempt = (t: number, e: string | null, r: boolean) => recorder.attempt(t, e, r);
      const error = await send(pool, opts.next(i++), opts.retry, onAttempt, sent, budget);
      recorder.record(sent, error);
    }
  };
  await Promise.all(Array.from({ length: opts.connections }, worker));
  const seconds = (micros() - start) / 1e6;
  await pool.close();
  return { ...recorder.result('closed', seconds), retriesRefused: budget?.refused };
}
