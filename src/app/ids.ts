import { randomBytes } from 'node:crypto';

/** 96 random bits, URL-safe, 16 characters: unguessable ids for users and photos. */
export function newId(): string {
  return randomBytes(12).toString('base64url');
}

export const idPattern = /^[A-Za-z0-9_-]{16}$/;
