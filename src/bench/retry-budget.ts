/**
 * A client's retry budget, as Finagle's `RetryBudget` (and gRPC's retry
 * throttling): over the last `windowMs`, the requests sent again may be at
 * most `ratio` of the requests sent, plus `minPerSecond` each second so that
 * a quiet client can still retry a lone failure. A retry outside the budget
 * is not made: its request fails, and the load the client adds to a server
 * that sheds stays within (1 + ratio) × what it sends. Without it, requests
 * shed in a slow minute come back on top of the steady load, are shed again,
 * and the slowdown becomes an outage (a metastable failure: Bronson et al.,
 * HotOS 2021; this project's soak with unbudgeted retries, benchmarks §20b).
 * Finagle's defaults are a 10 s window, 20 % and 10/s; gRPC's token ratio is 10 %.
 */
export interface RetryBudgetOptions {
  ratio: number;
  minPerSecond: number;
  windowMs: number;
}

export const defaultRetryBudget: RetryBudgetOptions = { ratio: 0.1, minPerSecond: 10, windowMs: 10_000 };

export class RetryBudget {
  /** Requests and retries per second of the window, a ring indexed by the second. */
  private readonly sent: number[];
  private readonly retried: number[];
  private readonly seconds: number[];
  /** Retries the budget refused. */
  refused = 0;

  readonly options: RetryBudgetOptions;
  private readonly now: () => number;

  constructor(options: RetryBudgetOptions = defaultRetryBudget, now: () => number = Date.now) {
    this.options = options;
    this.now = now;
    const slots = Math.max(1, Math.ceil(options.windowMs / 1000));
    this.sent = new Array(slots).fill(0);
    this.retried = new Array(slots).fill(0);
    this.seconds = new Array(slots).fill(-1);
  }

  /** A first attempt of a request. */
  noteSent(): void {
    const slot = this.slot();
    this.sent[slot] = (this.sent[slot] as number) + 1;
  }

  /** Takes one retry from the budget: true when it may be made. */
  tryRetry(): boolean {
    const slot = this.slot();
    let sent = 0;
    let retried = 0;
    const oldest = Math.floor(this.now() / 1000) - this.seconds.length + 1;
    for (let i = 0; i < this.seconds.length; i++) {
      if ((this.seconds[i] as number) < oldest) continue;
      sent += this.sent[i] as number;
      retried += this.retried[i] as number;
    }
    const allowed = this.options.ratio * sent + this.options.minPerSecond * this.seconds.length;
    if (retried + 1 > allowed) {
      this.refused++;
      return false;
    }
    this.retried[slot] = (this.retried[slot] as number) + 1;
    return true;
  }

  private slot(): number {
    const second = Math.floor(this.now() / 1000);
    const slot = second % this.seconds.length;
    if (this.seconds[slot] !== second) {
      this.seconds[slot] = second;
      this.sent[slot] = 0;
      this.retried[slot] = 0;
    }
    return slot;
  }
}
