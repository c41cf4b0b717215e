import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** The dashboard's cookie: the token, once given in its URL (HttpOnly, SameSite=Strict). */
export const controlCookie = 'scaleout_control';

export interface GuardOptions {
  /** The run's control token (control.token). */
  token: string;
  /** The address the API listens on: the only Host it answers to, with `localhost`. */
  listen: { host: string; port: number };
  /** A browser page (the dashboard): the token may come in `?token=` once, and is kept in a cookie. */
  page?: boolean;
}

const sameToken = (given: string, token: string) => {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
};

const cookieOf = (req: FastifyRequest, name: string): string | undefined => {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return undefined;
};

/** The Hosts a control API answers to: its own address and `localhost`, on its port. */
export const allowedHosts = (listen: { host: string; port: number }): string[] => [
  `${listen.host}:${listen.port}`,
  `localhost:${listen.port}`,
];

/**
 * The rule of every control API of a topology (the supervisor's, the
 * dashboard's), on every route and on loopback too:
 * - the Host must be its own address (or localhost): a DNS-rebinding page
 *   sends its own name, and is refused (421) whatever else it carries;
 * - a request a browser marks as from another site (Origin, Sec-Fetch-Site)
 *   is refused (403);
 * - the run's token must come with it (401 without): `Authorization: Bearer`,
 *   or, for the dashboard's page, its cookie (set from `?token=` once).
 */
export function guardControlApi(app: FastifyInstance, o: GuardOptions): void {
  const hosts = new Set(allowedHosts(o.listen));
  const origins = new Set([...hosts].map((h) => `http://${h}`));
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const host = req.headers.host ?? '';
    if (!hosts.has(host)) return reply.code(421).send({ error: `this API answers to ${[...hosts].join(' or ')} only` });
    const origin = req.headers.origin;
    if ((origin !== undefined && !origins.has(origin)) || req.headers['sec-fetch-site'] === 'cross-site') {
      return reply.code(403).send({ error: 'cross-site request refused' });
    }
    const header = req.headers.authorization;
    const bearer = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    if (bearer !== undefined && sameToken(bearer, o.token)) return;
    if (o.page) {
      const cookie = cookieOf(req, controlCookie);
      if (cookie !== undefined && sameToken(cookie, o.token)) return;
      const inUrl = (req.query as { token?: string } | undefined)?.token;
      if (req.method === 'GET' && inUrl !== undefined && sameToken(inUrl, o.token)) {
        // Out of the address bar (and its history) at once: a cookie carries it from here on.
        const url = new URL(req.url, `http://${host}`);
        url.searchParams.delete('token');
        return reply
          .header('set-cookie', `${controlCookie}=${encodeURIComponent(o.token)}; Path=/; HttpOnly; SameSite=Strict`)
          .redirect(`${url.pathname}${url.search}`, 303);
      }
    }
    return reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="scaleout"')
      .send({ error: `the run's control token is needed (the file control.token in the run directory)` });
  });
}

/** The header a client of a control API sends. */
export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
