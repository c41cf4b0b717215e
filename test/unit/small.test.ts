import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor, page } from '../../src/app/cursor.ts';
import { AppError } from '../../src/app/errors.ts';
import { hashPassword, verifyPassword } from '../../src/app/users/password.ts';
import { html } from '../../src/app/views/html.ts';
import { jittered } from '../../src/ports/cache.ts';
import { toClientError } from '../../src/server/errors.ts';

describe('cursor', () => {
  it('round-trips and rejects garbage with a 400', () => {
    const c = { createdAt: new Date('2026-01-01T00:00:00.123Z'), id: 'abcdefghijklmnop' };
    expect(decodeCursor(encodeCursor(c))).toEqual(c);
    expect(decodeCursor(undefined)).toBeUndefined();
    for (const bad of [
      '!!!',
      Buffer.from('[1,2]').toString('base64url'),
      Buffer.from('["not a date","x"]').toString('base64url'),
    ]) {
      expect(() => decodeCursor(bad)).toThrow(AppError);
    }
  });

  it('page() trims the extra row and points the cursor at the last item', () => {
    const rows = [3, 2, 1].map((n) => ({ id: String(n).repeat(16), createdAt: new Date(n * 1000) }));
    const p = page(rows, 2, (r) => r.id);
    expect(p.items).toEqual(['3'.repeat(16), '2'.repeat(16)]);
    expect(decodeCursor(p.nextCursor!)).toEqual({ id: '2'.repeat(16), createdAt: new Date(2000) });
    expect(page(rows, 3, (r) => r.id).nextCursor).toBeNull();
  });
});

describe('passwords', () => {
  it('verifies the right password only, with a fresh salt each time', async () => {
    const a = await hashPassword('correct horse battery');
    const b = await hashPassword('correct horse battery');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^scrypt\$/);
    expect(await verifyPassword('correct horse battery', a)).toBe(true);
    expect(await verifyPassword('wrong horse battery', a)).toBe(false);
    expect(await verifyPassword('x', 'not-a-hash')).toBe(false);
  });
});

describe('html', () => {
  it('escapes interpolations but not nested templates', () => {
    const inner = html`<b>${'<i>'}</b>`;
    expect(html`<p title="${'"x"'}">${inner}${['<a>', 1]}${null}</p>`.value).toBe(
      '<p title="&quot;x&quot;"><b>&lt;i&gt;</b>&lt;a&gt;1</p>',
    );
  });
});

describe('toClientError', () => {
  it('keeps client errors and hides server errors', () => {
    expect(toClientError(new AppError(409, 'CONFLICT', 'taken'))).toEqual({
      status: 409,
      code: 'CONFLICT',
      message: 'taken',
    });
    expect(toClientError(Object.assign(new Error('too big'), { statusCode: 413 }))).toMatchObject({
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
    });
    const hidden = toClientError(new Error('connection to 10.0.0.5 refused'));
    expect(hidden.status).toBe(500);
    expect(hidden.message).not.toContain('10.0.0.5');
  });
});

describe('cache TTL jitter', () => {
  it('spreads a TTL by at most ±10 %, never below 1 s', () => {
    expect(jittered(60, () => 0)).toBe(54);
    expect(jittered(60, () => 1)).toBe(66);
    expect(jittered(60, () => 0.5)).toBe(60);
    expect(jittered(1, () => 0)).toBe(1);
  });
});
