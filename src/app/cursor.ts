import { badRequest } from './errors.ts';
import { idPattern } from './ids.ts';

/** A keyset position: the (created_at, id) of the last item of the previous page. */
export interface Cursor {
  createdAt: Date;
  id: string;
}

export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.createdAt.toISOString(), c.id])).toString('base64url');
}

// Exactly what encodeCursor writes: an ISO instant between years 1000 and 9999 (inside PostgreSQL's range).
const isoInstant = /^[1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function decodeCursor(text: string | undefined): Cursor | undefined {
  if (!text) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string') {
      const [when, id] = value as [string, string];
      const createdAt = new Date(when);
      if (
        isoInstant.test(when) &&
        !Number.isNaN(createdAt.getTime()) &&
        createdAt.toISOString() === when &&
        idPattern.test(id)
      ) {
        return { createdAt, id };
      }
    }
  } catch {
    // fall through to the 400 below
  }
  throw badRequest('invalid cursor', 'INVALID_CURSOR');
}

/** Splits a page fetched with one extra row into items and the next cursor. */
export function page<T extends { createdAt: Date; id: string }, R>(
  rows: T[],
  limit: number,
  map: (row: T) => R,
): { items: R[]; nextCursor: string | null } {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  const last = items.at(-1);
  return { items: items.map(map), nextCursor: more && last ? encodeCursor(last) : null };
}
