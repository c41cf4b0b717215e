import { createHash, randomBytes } from 'node:crypto';

/** 256 random bits, URL-safe: the secret a client holds. */
export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

/** Stores keep only this digest, so a leaked table holds no usable session. */
export function sessionDigest(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}
