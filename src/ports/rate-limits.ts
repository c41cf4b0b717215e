/** One counter: how many events in the current window, when the window ends, and the last event. */
export interface RateCount {
  count: number;
  resetAt: Date;
  lastHitAt: Date;
}

/**
 * Fixed-window counters shared by every web server, so that a limit holds
 * for the whole site, not per process.
 */
export interface RateLimiter {
  /** Counts one event for `key`; a window of `windowMs` starts with the first event after the last one ended. */
  hit(key: string, windowMs: number): Promise<RateCount>;
  /** The counter as it stands, without counting; null when there is none in a live window. */
  peek(key: string): Promise<RateCount | null>;
  reset(key: string): Promise<void>;
}
