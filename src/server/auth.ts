import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { forbidden } from '../app/errors.ts';
import type { Viewer } from '../app/routes/context.ts';
import { runWithRequestId } from '../platform/observability/context.ts';
import type { ReadConsistency } from '../ports/db.ts';
import type { SessionStore } from '../ports/sessions.ts';

export const sessionCookie = 'sid';
export const csrfCookie = 'csrf';
const unsafeMethods = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const publicPrefixes = ['/static/', '/media/', '/healthz', '/readyz', '/metrics'];

/**
 * Resolves `request.viewer` from a bearer token or the session cookie, and
 * gives replies the cookie helpers. Cookies are HttpOnly and SameSite=Lax, and
 * Secure when the request came over TLS (or always, by config).
 */
export function installAuth(
  app: FastifyInstance,
  sessions: SessionStore,
  consistency: ReadConsistency,
  secureCookies: 'auto' | 'always' | 'never',
) {
  // The session of each request (found or started), for read-your-writes bookkeeping.
  const current = new WeakMap<FastifyRequest, { id: string; data: Record<string, string> } | null>();
  const secure = (request: FastifyRequest) =>
    secureCookies === 'always' || (secureCookies === 'auto' && request.protocol === 'https');

  app.decorateRequest('viewer', null);
  app.decorateReply(
    'startSession',
    function (this: FastifyReply, session: { id: string; expiresAt: Date; data?: Record<string, string> }) {
      current.set(this.request, { id: session.id, data: session.data ?? {} });
      this.setCookie(sessionCookie, session.id, {
        path: '/',
        httpOnly: true,
        sameSite: 'lax',
        secure: secure(this.request),
        expires: session.expiresAt,
      });
    },
  );
  app.decorateReply('endSession', function (this: FastifyReply) {
    current.set(this.request, null);
    this.clearCookie(sessionCookie, {
      path: '/',
      httpOnly: true,
      sameSite: 'lax',
      secure: secure(this.request),
    });
  });
  const issued = new WeakMap<FastifyRequest, string>();
  app.decorateReply('csrfToken', function (this: FastifyReply) {
    const existing = this.request.cookies[csrfCookie] ?? issued.get(this.request);
    if (existing) return existing;
    const token = randomBytes(24).toString('base64url');
    issued.set(this.request, token);
    this.setCookie(csrfCookie, token, {
      path: '/',
      httpOnly: true,
      sameSite: 'lax',
      secure: secure(this.request),
    });
    return token;
  });

  // Each request runs in its own request-id and consistency scopes (AsyncLocalStorage.run needs a callback hook).
  app.addHook('onRequest', (request, _reply, done) => runWithRequestId(request.id, () => consistency.scope(done)));
  app.addHook('onRequest', async (request, reply) => {
    if (publicPrefixes.some((p) => request.url.startsWith(p))) return;
    const header = request.headers.authorization;
    const bearer = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    const id = bearer ?? request.cookies[sessionCookie];
    if (!id || id.length > 128) return;
    const session = await sessions.get(id);
    if (!session) {
      if (!bearer) reply.endSession();
      return;
    }
    const viewer: Viewer = {
      userId: session.userId,
      username: session.data.username ?? '',
      sessionId: session.id,
      via: bearer ? 'bearer' : 'cookie',
    };
    // Defence in depth beside SameSite: a cookie-authenticated API write must not come from another origin.
    if (viewer.via === 'cookie' && unsafeMethods.has(request.method) && request.url.startsWith('/api/')) {
      const origin = request.headers.origin;
      if (origin && safeHost(origin) !== request.host) throw forbidden('cross-origin request refused');
    }
    request.viewer = viewer;
    current.set(request, { id: session.id, data: session.data });
    consistency.begin(session.data.lsn);
  });

  // After a write, the session remembers how far the primary had got, so this
  // user's next reads skip replicas that are behind it.
  app.addHook('onSend', async (request, _reply, payload) => {
    const session = current.get(request);
    if (!session) return payload;
    const token = await consistency.token();
    if (token && token !== session.data.lsn) {
      await sessions.update(session.id, { ...session.data, lsn: token });
    }
    return payload;
  });
}

function safeHost(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}
