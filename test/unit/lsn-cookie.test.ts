import cookie from '@fastify/cookie';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { createMemorySessionStore } from '../../src/platform/sessions/memory.ts';
import type { ReadConsistency } from '../../src/ports/db.ts';
import { installAuth } from '../../src/server/auth.ts';

/** A server with the auth hooks and a consistency that records what each request began from, and writes at `lsn`. */
async function server(lsn: string) {
  const begun: (string | undefined)[] = [];
  const consistency: ReadConsistency = {
    scope: (fn) => fn(),
    begin: (token) => {
      begun.push(token);
    },
    token: async () => lsn,
  };
  const app = Fastify();
  await app.register(cookie);
  installAuth(app, createMemorySessionStore(3600), consistency, 'never', 'a'.repeat(32), ['http://site.test']);
  app.post('/write', async () => ({ ok: true }));
  app.get('/read', async () => ({ ok: true }));
  return { app, begun };
}

describe('the read-your-writes cookie', () => {
  it('is signed, and a forged or altered one is ignored (it would send every read to the primary)', async () => {
    const { app, begun } = await server('0/16B3748');
    const write = await app.inject({ method: 'POST', url: '/write' });
    const set = write.cookies.find((c) => c.name === 'lsn');
    expect(set?.value).toMatch(/^0\/16B3748\.[A-Za-z0-9_-]{43}$/);
    // The signed cookie counts...
    await app.inject({ method: 'GET', url: '/read', cookies: { lsn: String(set?.value) } });
    expect(begun.at(-1)).toBe('0/16B3748');
    // ... a forged one does not, nor a signature moved to another position.
    for (const forged of ['FFFFFFFF/FFFFFFFF', `FFFFFFFF/FFFFFFFF.${String(set?.value).split('.')[1]}`, 'x.y']) {
      begun.length = 0;
      await app.inject({ method: 'GET', url: '/read', cookies: { lsn: forged } });
      expect(begun.filter(Boolean)).toEqual([]);
    }
    await app.close();
  });

  it('refuses a write whose Origin is not the public URL, whatever X-Forwarded-Host says', async () => {
    const { app } = await server('0/1');
    const forged = await app.inject({
      method: 'POST',
      url: '/write',
      headers: { origin: 'http://evil.test', 'x-forwarded-host': 'evil.test', host: 'evil.test' },
    });
    expect(forged.statusCode).toBe(403);
    const own = await app.inject({ method: 'POST', url: '/write', headers: { origin: 'http://site.test' } });
    expect(own.statusCode).toBe(200);
    await app.close();
  });
});
