import { createHmac } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import '../app/routes/context.ts';
import { idempotencyField } from '../app/views/layout.ts';
import type { IdempotencyStore, StoredResponse } from '../ports/idempotency.ts';

const header = 'idempotency-key';
// The draft's key is an sf-string; this takes its printable ASCII, at most 255 characters (Stripe's limit).
const keyPattern = /^[\x21-\x7e]{1,255}$/;
const writes = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const kept = ['content-type', 'location', 'set-cookie', 'cache-control'];
/**
 * Answers not kept: the request did nothing that a retry must not do again
 * (not logged in, refused, a body too slow, rate-limited), so a retry runs anew.
 * 5xx answers are not kept either: nothing a failed request began is acknowledged.
 */
const notKept = new Set([401, 403, 408, 429]);
/** The routes that create the caller's identity: their keys are not scoped by the session that comes with them. */
const identityRoutes = new Set(['/api/v1/users', '/api/v1/sessions', '/signup', '/login']);
/** Fields of a form that are not the request's content (they change between two renders of one form). */
const formOnly = new Set(['_csrf', idempotencyField]);

export interface IdempotencyOptions {
  store: IdempotencyStore;
  /** Keys the fingerprints (an unkeyed hash of a log-in's body would be a password hash in the store). */
  secret: string;
  /** How long a first answer is replayed (24 h). */
  ttlSeconds: number;
  /** How long a running request holds its key before a retry may run (its process may have died). */
  leaseMs: number;
}

interface Held {
  key: string;
  fingerprint: string;
}

/**
 * `Idempotency-Key` on every POST, PUT, PATCH and DELETE (the IETF draft's
 * header, as Stripe's API takes it; the site's forms send it as a field):
 * - the first request with a key runs and its answer is kept for a day;
 * - a repeat with the same body gets that answer again, marked
 *   `Idempotent-Replayed: true`, and nothing is done again;
 * - a repeat with another body is a 422; one while the first still runs is a
 *   409 with Retry-After (a process killed holding it lets go after the lease).
 * Keys are per account (or per anonymous client for sign-up and log-in).
 * JSON and form bodies are fingerprinted before the handler; multipart
 * routes call `request.claimIdempotency` once they have read their body.
 */
export function installIdempotency(app: FastifyInstance, o: IdempotencyOptions): void {
  const held = new WeakMap<FastifyRequest, Held>();
  app.decorateRequest('idempotencyKey', null);
  app.decorateRequest(
    'claimIdempotency',
    async function (this: FastifyRequest, reply: FastifyReply, fields: Record<string, string>, file?: Buffer) {
      const key = keyOf(this, fields);
      if (!key) return false;
      return claim(this, reply, key, [...bodyParts(fields), file ?? '']);
    },
  );

  const keyOf = (request: FastifyRequest, fields: unknown = request.body): string | undefined => {
    const given = request.headers[header] ?? fieldOf(fields);
    if (given === undefined) return undefined;
    if (typeof given !== 'string' || !keyPattern.test(given)) {
      throw Object.assign(new Error('Idempotency-Key: 1–255 printable ASCII characters'), { statusCode: 400 });
    }
    return given;
  };

  const fingerprintOf = (request: FastifyRequest, parts: (string | Buffer)[]): string => {
    const h = createHmac('sha256', o.secret).update(`${request.method} ${request.url}\n`);
    for (const p of parts) h.update(`${Buffer.byteLength(p)}:`).update(p);
    return h.digest('base64url');
  };

  /** Claims the key, or answers the repeat; true when it answered. */
  const claim = async (
    request: FastifyRequest,
    answer: FastifyReply,
    key: string,
    parts: (string | Buffer)[],
  ): Promise<boolean> => {
    // Keys are per account. Sign-up and log-in make the account (or the session) they would be scoped by,
    // so theirs are the anonymous scope's even when a session came along: a retry with the cookie the
    // first answer set is the same request. Their fingerprint holds the password: a repeat needs it.
    const path = request.url.split('?')[0] ?? '';
    const owner = identityRoutes.has(path) ? 'anon' : (request.viewer?.userId ?? 'anon');
    const scoped = `${owner}:${key}`;
    const fingerprint = fingerprintOf(request, parts);
    const found = await o.store.claim(scoped, fingerprint, o.leaseMs);
    if (found.state === 'claimed') {
      held.set(request, { key: scoped, fingerprint });
      request.idempotencyKey = key;
      return false;
    }
    if (found.fingerprint !== fingerprint) {
      await sendError(answer, 422, 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with another request');
      return true;
    }
    if (found.state === 'running') {
      answer.header('retry-after', '1');
      await sendError(answer, 409, 'IDEMPOTENCY_IN_PROGRESS', 'a request with this Idempotency-Key is still running');
      return true;
    }
    replay(answer, found.response);
    return true;
  };

  app.addHook('preHandler', async (request, reply) => {
    if (!writes.has(request.method) || request.isMultipart()) return;
    const key = keyOf(request);
    if (!key) return;
    if (await claim(request, reply, key, bodyParts(request.body))) return reply;
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const h = held.get(request);
    if (!h) return payload;
    held.delete(request);
    const status = reply.statusCode;
    const body =
      typeof payload === 'string' || Buffer.isBuffer(payload)
        ? Buffer.from(payload)
        : payload == null
          ? Buffer.alloc(0)
          : undefined;
    if (status >= 500 || notKept.has(status) || !body) {
      await o.store
        .release(h.key, h.fingerprint)
        .catch((err) => request.log.warn({ err }, 'idempotency key not released'));
      return payload;
    }
    const headers: StoredResponse['headers'] = {};
    for (const name of kept) {
      const v = reply.getHeader(name);
      if (v !== undefined) headers[name] = Array.isArray(v) ? v.map(String) : String(v);
    }
    // Kept before the answer goes: a repeat that comes after it finds the answer, not a running key.
    await o.store.complete(h.key, h.fingerprint, { status, headers, body: body.toString('base64') }, o.ttlSeconds);
    return payload;
  });
}

function replay(reply: FastifyReply, response: StoredResponse): void {
  reply.code(response.status);
  for (const [name, value] of Object.entries(response.headers)) reply.header(name, value);
  reply.header('idempotent-replayed', 'true');
  reply.send(Buffer.from(response.body, 'base64'));
}

async function sendError(reply: FastifyReply, status: number, code: string, message: string): Promise<void> {
  reply.code(status).header('content-type', 'application/json; charset=utf-8');
  reply.send(JSON.stringify({ error: { code, message, requestId: reply.request.id } }));
}

function fieldOf(body: unknown): unknown {
  return body && typeof body === 'object' ? (body as Record<string, unknown>)[idempotencyField] : undefined;
}

/** A parsed JSON or form body as fingerprint parts: its content, without the form's own fields. */
function bodyParts(body: unknown): string[] {
  if (body === undefined || body === null) return [];
  if (typeof body !== 'object') return [String(body)];
  const entries = Object.entries(body as Record<string, unknown>).filter(([k]) => !formOnly.has(k));
  return [JSON.stringify(Object.fromEntries(entries))];
}
