import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../app/errors.ts';
import { RateLimitedError } from '../app/throttle.ts';
import { StoreUnavailableError } from '../ports/db.ts';

export interface ErrorPayload {
  status: number;
  code: string;
  message: string;
  /** For a 429: when a retry can succeed. */
  retryAfterSeconds?: number;
}

/**
 * Turns any thrown value into what the client may see. Client errors keep
 * their message; anything else becomes a generic 500 and the details go only
 * to the log.
 */
export function toClientError(err: unknown): ErrorPayload {
  if (err instanceof RateLimitedError) {
    return { status: 429, code: err.code, message: err.message, retryAfterSeconds: err.retryAfterSeconds };
  }
  if (err instanceof AppError) return { status: err.status, code: err.code, message: err.message };
  if (err instanceof StoreUnavailableError) {
    return { status: 503, code: 'UNAVAILABLE', message: 'the service is briefly unavailable; try again in a moment' };
  }
  const e = err as Partial<FastifyError> & { validation?: unknown };
  if (e.validation) {
    return { status: 400, code: 'VALIDATION', message: e.message ?? 'invalid request' };
  }
  const status = e.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return { status, code: codeFor(status, e.code), message: e.message ?? 'bad request' };
  }
  return {
    status: 500,
    code: 'INTERNAL',
    message: 'something went wrong on our side; quote the request id if you report it',
  };
}

function codeFor(status: number, fastifyCode: string | undefined): string {
  if (status === 413) return 'PAYLOAD_TOO_LARGE';
  if (status === 415) return 'UNSUPPORTED_MEDIA_TYPE';
  if (status === 429) return 'RATE_LIMITED';
  if (fastifyCode === 'FST_ERR_CTP_INVALID_JSON_BODY' || fastifyCode === 'FST_ERR_CTP_EMPTY_JSON_BODY')
    return 'INVALID_JSON';
  return status === 404 ? 'NOT_FOUND' : 'BAD_REQUEST';
}

export const wantsJson = (request: FastifyRequest) =>
  request.url.startsWith('/api/') || !(request.headers.accept ?? '').includes('text/html');

export function installErrorHandlers(
  app: FastifyInstance,
  renderHtml: (request: FastifyRequest, reply: FastifyReply, error: ErrorPayload) => string,
): void {
  const respond = (request: FastifyRequest, reply: FastifyReply, error: ErrorPayload) => {
    reply.code(error.status);
    if (error.status === 429 && !reply.hasHeader('retry-after')) {
      reply.header('retry-after', String(error.retryAfterSeconds ?? 60));
    }
    if (error.status === 503) reply.header('retry-after', '1');
    if (wantsJson(request)) {
      return reply.send({ error: { code: error.code, message: error.message, requestId: request.id } });
    }
    return reply.type('text/html; charset=utf-8').send(renderHtml(request, reply, error));
  };

  app.setErrorHandler((err, request, reply) => {
    const error = toClientError(err);
    if (error.status === 503) request.log.warn({ err }, 'dependency unavailable');
    else if (error.status >= 500) request.log.error({ err }, 'request failed');
    else request.log.info({ code: error.code, status: error.status, msg: error.message }, 'client error');
    return respond(request, reply, error);
  });

  app.setNotFoundHandler((request, reply) =>
    respond(request, reply, {
      status: 404,
      code: 'NOT_FOUND',
      message: `no route for ${request.method} ${request.url.split('?')[0]}`,
    }),
  );
}
