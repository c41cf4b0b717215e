import type { RateLimiter } from '../ports/rate-limits.ts';
import { AppError } from './errors.ts';

/** 429 with the seconds after which a retry can succeed (the Retry-After header). */
export class RateLimitedError extends AppError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number) {
    super(429, 'RATE_LIMITED', message);
    this.retryAfterSeconds = Math.max(1, Math.ceil(retryAfterSeconds));
  }
}

export interface ThrottleSettings {
  windowMs: number;
  /** Log-in attempts per client address per window, the API and the site together. */
  loginsPerClient: number;
  /** Sign-ups per client address per window. */
  signupsPerClient: number;
  /**
   * Failed log-ins of one account from one client address before that address
   * backs off for that account. Across every address the account backs off only
   * after 20 times as many, and for a minute at most.
   */
  accountFailuresBeforeBackoff: number;
  /** Uploads per user per window. */
  uploadsPerUser: number;
}

const hour = 3_600_000;
/** The longest one address backs off for one account after failed log-ins. */
export const maxAccountBackoffMs = 15 * 60_000;
/** The longest an account backs off for every address: short, so that nobody can lock its owner out. */
export const maxAccountWideBackoffMs = 60_000;
/** Failures from all addresses together, relative to one address's, before the account-wide back-off. */
export const accountWideFactor = 20;

/** The back-off after `failures` failed log-ins: 1 s, doubling, at most `maxMs`. */
export function accountBackoffMs(failures: number, before: number, maxMs = maxAccountBackoffMs): number {
  if (failures < before) return 0;
  return Math.min(1000 * 2 ** Math.min(failures - before, 30), maxMs);
}

const seconds = (ms: number) => ms / 1000;

/**
 * The site's limits, counted in a store every web server shares: per client
 * address for log-ins and sign-ups, per account for failed log-ins (so that a
 * botnet of addresses cannot guess one password), per user for uploads.
 */
export function createThrottle(limiter: RateLimiter, settings: ThrottleSettings) {
  const count = async (key: string, max: number, what: string) => {
    const c = await limiter.hit(key, settings.windowMs);
    if (c.count > max) {
      throw new RateLimitedError(
        `too many ${what}: try again in ${Math.ceil(seconds(c.resetAt.getTime() - Date.now()))} s`,
        seconds(c.resetAt.getTime() - Date.now()),
      );
    }
  };
  // OWASP's advice against lockout: failures count per account *and* address, so
  // an attacker's wrong passwords back off the attacker, not the owner elsewhere.
  const failureKey = (username: string, client: string) => `login-failures:${username}:${client}`;
  const accountKey = (username: string) => `login-failures:${username}`;
  const backoff = async (key: string, before: number, maxMs: number) => {
    const failures = await limiter.peek(key);
    return failures ? failures.lastHitAt.getTime() + accountBackoffMs(failures.count, before, maxMs) - Date.now() : 0;
  };
  return {
    /** Before a log-in: the client's budget, then the back-off of this account from this address, then the account's. */
    async beforeLogIn(client: string, username: string): Promise<void> {
      await count(`login:${client}`, settings.loginsPerClient, 'log-in attempts');
      const before = settings.accountFailuresBeforeBackoff;
      const waitMs = Math.max(
        await backoff(failureKey(username, client), before, maxAccountBackoffMs),
        await backoff(accountKey(username), before * accountWideFactor, maxAccountWideBackoffMs),
      );
      if (waitMs > 0) {
        throw new RateLimitedError(
          `too many failed log-ins for this account: try again in ${Math.ceil(seconds(waitMs))} s`,
          seconds(waitMs),
        );
      }
    },
    async logInFailed(username: string, client: string): Promise<void> {
      await limiter.hit(failureKey(username, client), hour);
      await limiter.hit(accountKey(username), hour);
    },
    async logInSucceeded(username: string, client: string): Promise<void> {
      await limiter.reset(failureKey(username, client));
    },
    beforeSignUp: (client: string) => count(`signup:${client}`, settings.signupsPerClient, 'sign-ups'),
    beforeUpload: (userId: string) => count(`upload:${userId}`, settings.uploadsPerUser, 'uploads'),
  };
}

export type Throttle = ReturnType<typeof createThrottle>;
