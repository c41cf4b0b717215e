import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { photoPage } from '../../src/app/routes/api/schemas.ts';
import { responseSerializerCompiler } from '../../src/server/serialize.ts';

describe('response serialisation from the zod schemas', () => {
  const item = {
    id: 'AAAAAAAAAAAAAAAA',
    owner: 'ann',
    caption: 'a "quoted" caption',
    status: 'ready',
    likeCount: 2,
    likedByMe: false,
    width: 10,
    height: 20,
    createdAt: '2026-11-28T10:00:00.000Z',
    variants: { thumb: 'http://x/t.webp', display: null },
    sizes: { thumb: { width: 1, height: 2 }, display: null },
  };

  it('writes exactly the declared fields: one a route did not declare never leaks', () => {
    const write = responseSerializerCompiler({ schema: photoPage });
    const out = JSON.parse(
      write({ items: [{ ...item, ownerId: 'secret', passwordHash: 'x' }], nextCursor: null, extra: 1 }),
    );
    expect(out).toEqual({ items: [item], nextCursor: null });
  });

  it('keeps a field named like a schema keyword', () => {
    const write = responseSerializerCompiler({ schema: z.object({ format: z.string(), pattern: z.url().nullable() }) });
    expect(JSON.parse(write({ format: 'webp', pattern: null }))).toEqual({ format: 'webp', pattern: null });
  });

  it('refuses a response that lacks a required field', () => {
    const write = responseSerializerCompiler({ schema: z.object({ token: z.string() }) });
    expect(() => write({})).toThrow(/token/);
  });
});
