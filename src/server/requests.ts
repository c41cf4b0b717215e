import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, unsupportedMediaType } from '../app/errors.ts';

const hostName =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])(?::(\d{1,5}))?$/;

/** A Host header as the site accepts it: a name or an address, and a port in range. */
export function isWellFormedHost(host: string): boolean {
  const m = hostName.exec(host);
  if (!m) return false;
  return m[1] === undefined || Number(m[1]) <= 65535;
}

const loopbackNames = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Every request names a well-formed Host (a malformed one is a 400). Absolute
 * URLs are built from the configured public URL; without one, only from a Host
 * on the allow-list (by default the loopback names and the address the server
 * listens on, with its port), and any other Host gets a 400, so a forged Host
 * never ends up in a link.
 */
export function installHostCheck(app: FastifyInstance, opts: { publicUrl?: string; allowedHosts: string[] }): void {
  const allowed = new Set(opts.allowedHosts.map((h) => h.toLowerCase()));
  // The server's own address, read once it listens (not on every request).
  let own: { host: string; port: number } | undefined;
  const listening = (): { host: string; port: number } | undefined => {
    if (own) return own;
    const a = app.server.address();
    if (a && typeof a !== 'string') own = { host: a.family === 'IPv6' ? `[${a.address}]` : a.address, port: a.port };
    return own;
  };
  const isAllowed = (host: string) => {
    if (allowed.size > 0) return allowed.has(host);
    const own = listening();
    if (!own) return false;
    const [name, port] = splitHost(host);
    return Number(port ?? 80) === own.port && (loopbackNames.has(name) || name === own.host);
  };
  app.addHook('onRequest', async (request) => {
    const host = request.headers.host;
    // HTTP/1.0 health checks may send no Host; nothing then uses it.
    if (host === undefined) return;
    if (!isWellFormedHost(host)) throw badRequest('malformed Host header', 'BAD_HOST');
    if (!opts.publicUrl && !isAllowed(host.toLowerCase())) {
      throw badRequest(
        'this site does not answer to that host name (set SCALEOUT_PUBLIC_URL or SCALEOUT_ALLOWED_HOSTS)',
        'BAD_HOST',
      );
    }
  });
}

function splitHost(host: string): [string, string | undefined] {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host);
  return m ? [m[1] as string, m[2]] : [host, undefined];
}

const unsafe = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The JSON API takes JSON, and multipart where it uploads: a form-encoded or
 * plain-text body (what a cross-site HTML form can send) is a 415 before any
 * handler runs.
 */
export async function requireApiContentType(request: FastifyRequest): Promise<void> {
  if (!unsafe.has(request.method)) return;
  const length = request.headers['content-length'];
  const hasBody = request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
  if (!hasBody) return;
  const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type === 'application/json') return;
  // Routes that upload say so in their config.
  if (type === 'multipart/form-data' && request.routeOptions.config.multipart) return;
  throw unsupportedMediaType('send application/json (multipart/form-data for uploads)');
}

/**
 * A request's body must arrive within `ms` of its headers. A client that
 * trickles it (a byte every few seconds: a slow-body attack) gets 408 and the
 * connection is closed; nothing it sent is acted on. Node's own
 * requestTimeout checks only every 30 s, hence a timer per request with a body.
 */
export function installBodyDeadline(app: FastifyInstance, ms: number): { receiving(): number } {
  // Requests whose body is still arriving: not work yet (the autoscaler's in-flight metric leaves them out).
  let receiving = 0;
  app.addHook('onRequest', (request, reply, done) => {
    const raw = request.raw;
    const length = raw.headers['content-length'];
    const hasBody = (length !== undefined && length !== '0') || raw.headers['transfer-encoding'] !== undefined;
    if (!hasBody || raw.complete) return done();
    receiving++;
    let counted = true;
    const timer = setTimeout(() => {
      if (raw.complete) return;
      request.log.warn({ bodyTimeoutMs: ms }, 'the request body did not arrive in time: 408, connection closed');
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(408, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
        reply.raw.end(
          JSON.stringify({
            error: {
              code: 'REQUEST_TIMEOUT',
              message: `the request body did not arrive within ${ms / 1000} s`,
              requestId: request.id,
            },
          }),
        );
      }
      raw.socket?.destroySoon?.();
      setTimeout(() => raw.socket?.destroy(), 1000).unref();
    }, ms);
    timer.unref();
    const clear = () => {
      clearTimeout(timer);
      if (counted) receiving--;
      counted = false;
    };
    raw.once('end', clear);
    raw.once('close', clear);
    done();
  });
  return { receiving: () => receiving };
}
