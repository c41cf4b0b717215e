import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { forbidden } from '../app/errors.ts';
import type { Viewer } from '../app/routes/context.ts';
import { runWithRequestId } from '../platform/observability/context.ts';
import type { ReadConsistency } from '../ports/db.ts';
import type { SessionStore } from '../ports/sessions.ts';

export const sessionCookie = 'sid';
export const csrfCookie = 'csrf';
/** Read-your-writes for a client without a session: how far the primary had got after its last write. */
export const lsnCookie = 'lsn';
const formExpired = 'the form has expired: reload the page and try again';
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
  secret: string,
  /** The site's public URL (and, behind a CDN edge, the origin's): the Origins its pages post from (else the request's own Host). */
  siteUrls: string[] = [],
) {
  const publicOrigin = siteUrls.length ? new Set(siteUrls.map((u) => new URL(u).origin)) : undefined;
  // The session of each request (found or started), for read-your-writes bookkeeping.
  const current = new WeakMap<FastifyRequest, { id: string; data: Record<string, string> } | null>();
  const secure = (request: FastifyRequest) =>
    secureCookies === 'always' || (secureCookies === 'auto' && request.protocol === 'https');
  // Every cookie of the site: HttpOnly, SameSite=Lax, for the whole site, Secure over TLS.
  const cookieOptions = (request: FastifyRequest) =>
    ({ path: '/', httpOnly: true, sameSite: 'lax', secure: secure(request) }) as const;
  // Over TLS the cookies carry the __Host- prefix: Secure, Path=/, no Domain, so no other host can plant them.
  const cookieName = (request: FastifyRequest, base: string) => (secure(request) ? `__Host-${base}` : base);
  // A form's token: an HMAC of the browser's CSRF nonce and its session. A nonce
  // planted by someone else is useless without a token this server signed.
  const csrfFor = (nonce: string, request: FastifyRequest) =>
    createHmac('sha256', secret)
      .update(`csrf\0${nonce}\0${request.viewer?.sessionId ?? ''}`)
      .digest('base64url');

  // The read-your-writes cookie is signed: a forged one (say FFFFFFFF/FFFFFFFF, ahead of every
  // replica) would send every read of its client to the primary.
  const lsnSignature = (lsn: string) => createHmac('sha256', secret).update(`lsn\0${lsn}`).digest('base64url');
  const signedLsn = (lsn: string) => `${lsn}.${lsnSignature(lsn)}`;
  const verifiedLsn = (value: string | undefined): string | undefined => {
    if (!value || value.length > 100) return undefined;
    const dot = value.lastIndexOf('.');
    if (dot < 0) return undefined;
    const lsn = value.slice(0, dot);
    const a = Buffer.from(lsnSignature(lsn));
    const b = Buffer.from(value.slice(dot + 1));
    return a.length === b.length && timingSafeEqual(a, b) ? lsn : undefined;
  };

  app.decorateRequest('viewer', null);
  app.decorateReply(
    'startSession',
    function (this: FastifyReply, session: { id: string; expiresAt: Date; data?: Record<string, string> }) {
      current.set(this.request, { id: session.id, data: session.data ?? {} });
      this.setCookie(cookieName(this.request, sessionCookie), session.id, {
        ...cookieOptions(this.request),
        expires: session.expiresAt,
      });
    },
  );
  app.decorateReply('endSession', function (this: FastifyReply) {
    current.set(this.request, null);
    this.clearCookie(cookieName(this.request, sessionCookie), cookieOptions(this.request));
  });
  const issued = new WeakMap<FastifyRequest, string>();
  const nonceOf = (request: FastifyRequest) => request.cookies[cookieName(request, csrfCookie)];
  app.decorateReply('csrfToken', function (this: FastifyReply) {
    let nonce = nonceOf(this.request) ?? issued.get(this.request);
    if (!nonce) {
      nonce = randomBytes(24).toString('base64url');
      issued.set(this.request, nonce);
      this.setCookie(cookieName(this.request, csrfCookie), nonce, cookieOptions(this.request));
    }
    return csrfFor(nonce, this.request);
  });
  app.decorateRequest('verifyCsrf', function (this: FastifyRequest, token: string | undefined) {
    const nonce = nonceOf(this);
    if (!nonce || !token) throw forbidden(formExpired);
    const a = Buffer.from(csrfFor(nonce, this));
    const b = Buffer.from(token);
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw forbidden(formExpired);
  });

  // No unsafe request from another site, logged in or not: neither a form
  // (log-in CSRF) nor a script. Browsers say where a request comes from in
  // Sec-Fetch-Site and Origin; clients that are not browsers send neither.
  app.addHook('onRequest', async (request) => {
    if (!unsafeMethods.has(request.method)) return;
    if (request.headers['sec-fetch-site'] === 'cross-site') throw forbidden('cross-site request refused');
    const origin = request.headers.origin;
    if (origin !== undefined && !sameOrigin(origin, request, publicOrigin)) {
      throw forbidden('cross-origin request refused');
    }
  });

  // Each request runs in its own request-id and consistency scopes (AsyncLocalStorage.run needs a callback hook).
  app.addHook('onRequest', (request, _reply, done) => runWithRequestId(request.id, () => consistency.scope(done)));
  app.addHook('onRequest', async (request, reply) => {
    if (publicPrefixes.some((p) => request.url.startsWith(p))) return;
    const header = request.headers.authorization;
    const bearer = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    const id = bearer ?? request.cookies[cookieName(request, sessionCookie)];
    const anonymous = () => {
      const token = verifiedLsn(request.cookies[cookieName(request, lsnCookie)]);
      if (token) consistency.begin(token);
    };
    if (!id || id.length > 128) return anonymous();
    const session = await sessions.get(id);
    if (!session) {
      if (!bearer) reply.endSession();
      return anonymous();
    }
    const viewer: Viewer = {
      userId: session.userId,
      username: session.data.username ?? '',
      sessionId: session.id,
      via: bearer ? 'bearer' : 'cookie',
    };
    request.viewer = viewer;
    current.set(request, { id: session.id, data: session.data });
    consistency.begin(session.data.lsn);
  });

  // After a write, the session remembers how far the primary had got, so this
  // user's next reads skip replicas that are behind it.
  app.addHook('onSend', async (request, reply, payload) => {
    const session = current.get(request);
    const token = await consistency.token();
    if (!session) {
      // No session (a sign-up, say): a short-lived cookie carries the token, so the client's next reads see its write.
      const name = cookieName(request, lsnCookie);
      if (token && token !== verifiedLsn(request.cookies[name])) {
        reply.setCookie(name, signedLsn(token), { ...cookieOptions(request), maxAge: 300 });
      }
      return payload;
    }
    if (token && token !== session.data.lsn) {
      await sessions.update(session.id, { ...session.data, lsn: token });
    }
    return payload;
  });
}

/**
 * The Origin names this site: its public URL's origin when it has one, else
 * the scheme and Host the request was sent to. Never a forwarded host: a
 * client can send any X-Forwarded-Host (the balancer drops it too).
 */
function sameOrigin(origin: string, request: FastifyRequest, publicOrigin: Set<string> | undefined): boolean {
  if (publicOrigin !== undefined) return publicOrigin.has(origin);
  try {
    const url = new URL(origin);
    return url.host === request.headers.host && url.protocol === `${request.protocol}:`;
  } catch {
    return false; // "null" (a sandboxed page, a file) or garbage
  }
}
