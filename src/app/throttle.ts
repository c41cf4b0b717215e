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
  /** Failed log-ins of one account before it backs off, whatever the address. */
  accountFailuresBeforeBackoff: number;
  /** Uploads per user per window. */
  uploadsPerUser: number;
}

const hour = 3_600_000;
/** The longest an account backs off after failed log-ins. */
export const maxAccountBackoffMs = 15 * 60_000;

/** The back-off of an account after `failures` failed log-ins: 1 s, doubling, at most 15 minutes. */
export function accountBackoffMs(failures: number, before: number): number {
  if (failures < before) return 0;
  return Math.min(1000 * 2 ** (failures - before), maxAccountBackoffMs);
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
  const failureKey = (username: string) => `login-failures:${username}`;
  return {
    /** Before a log-in: the client's budget, then the account's back-off after failures. */
    async beforeLogIn(client: string, username: string): Promise<void> {
      await count(`login:${client}`, settings.loginsPerClient, 'log-in attempts');
      const failures = await limiter.peek(failureKey(username));
      if (!failures) return;
      const waitMs =
        failures.lastHitAt.getTime() +
        accountBackoffMs(failures.count, settings.accountFailuresBeforeBackoff) -
        Date.now();
      if (waitMs > 0) {
        throw new RateLimitedError(
          `too many failed log-ins for this account: try again in ${Math.ceil(seconds(waitMs))} s`,
          seconds(waitMs),
        );
      }
    },
    async logInFailed(username: string): Promise<void> {
      await limiter.hit(failureKey(username), hour);
    },
    async logInSucceeded(username: string): Promise<void> {
      await limiter.reset(failureKey(username));
    },
    beforeSignUp: (client: string) => count(`signup:${client}`, settings.signupsPerClient, 'sign-ups'),
    beforeUpload: (userId: string) => count(`upload:${userId}`, settings.uploadsPerUser, 'uploads'),
  };
}

export type Throttle = ReturnType<typeof createThrottle>;
