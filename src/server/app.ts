import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import { jsonSchemaTransform, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { accountRoutes } from '../app/routes/api/accounts.ts';
import { photoRoutes } from '../app/routes/api/photos.ts';
import type { RouteSettings, Services } from '../app/routes/context.ts';
import { htmlRoutes } from '../app/routes/html/pages.ts';
import { mediaRoutes } from '../app/routes/media.ts';
import { errorPage } from '../app/views/pages.ts';
import { currentRequestContext, type RequestContext } from '../platform/observability/context.ts';
import type { Metrics } from '../platform/observability/metrics.ts';
import { type ReadConsistency, StoreUnavailableError } from '../ports/db.ts';
import type { IdempotencyStore } from '../ports/idempotency.ts';
import type { SessionStore } from '../ports/sessions.ts';
import { type AdmissionOptions, defaultAdmission, installAdmission } from './admission.ts';
import { loadAssets } from './assets.ts';
import { installAuth } from './auth.ts';
import type { Drain } from './drain.ts';
import { installErrorHandlers } from './errors.ts';
import { healthRoutes, type ReadinessCheck } from './health.ts';
import { installIdempotency } from './idempotency.ts';
import { installBodyDeadline, installHostCheck, requireApiContentType } from './requests.ts';
import { installSecurityHeaders } from './security-headers.ts';
import { responseSerializerCompiler } from './serialize.ts';

const noConsistency: ReadConsistency = { scope: (fn) => fn(), begin: () => {}, token: async () => undefined };
const publicDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'public');
const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;
/** How long a request waits for its user's daily-active row before it goes on without it (ms). */
const activityWaitMs = 250;

export interface ServerOptions {
  services: Services;
  sessions: SessionStore;
  /** Read-your-writes bookkeeping of the database; a no-op for an embedded one. */
  consistency?: ReadConsistency;
  settings: RouteSettings;
  logger: Logger;
  metrics: Metrics;
  readiness: ReadinessCheck[];
  /** The code version (git commit) this server runs, shown by /healthz. */
  version?: string;
  /** Graceful shutdown: /readyz fails while draining; requests in flight are counted. */
  drain?: Drain;
  trustProxy: boolean | number | string[];
  /** Signs the forms' CSRF tokens. */
  secret: string;
  /** Host headers the site answers to when no public URL is set (empty: any well-formed one). */
  allowedHosts: string[];
  secureCookies: 'auto' | 'always' | 'never';
  /** How long a request's body may take to arrive (default 30 s). */
  bodyTimeoutMs?: number;
  /** Where Idempotency-Keys and first answers are kept (the durable store). */
  idempotency: IdempotencyStore;
  /** How long a first answer is replayed (24 h) and how long a running request holds its key. */
  idempotencyTtlSeconds?: number;
  idempotencyLeaseMs?: number;
  /** Load shedding's bounds (defaults: `defaultAdmission`). */
  admission?: Partial<AdmissionOptions>;
}

/** The HTTP server: the site, the JSON API and the operational endpoints, on the given services. */
export async function buildServer(options: ServerOptions): Promise<FastifyInstance> {
  const { services, settings, metrics } = options;
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    trustProxy: options.trustProxy as FastifyServerOptions['trustProxy'],
    bodyLimit: 64 * 1024,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && requestIdPattern.test(given) ? given : randomUUID();
    },
    routerOptions: { ignoreTrailingSlash: true },
    // Closing waits for requests in flight and closes idle keep-alive connections; a late request on a
    // busy connection is still served (the balancer has taken this server out before the close).
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  });
  options.drain?.install(app);
  // First of the request hooks: a shed request costs nothing more (no session lookup, no query).
  const admission = installAdmission(app, {
    ...defaultAdmission,
    ...options.admission,
    onShed: (cls, reason) => metrics.requestShed(cls, reason),
  });
  app.addHook('onClose', async () => admission.stop());
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(responseSerializerCompiler);

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  installHostCheck(app, { publicUrl: settings.publicUrl, allowedHosts: options.allowedHosts });
  const bodies = installBodyDeadline(app, options.bodyTimeoutMs ?? 30_000);
  // The request's context (request id, query count), captured once the auth hook has opened it.
  const contexts = new WeakMap<FastifyRequest, RequestContext>();
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.observeRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    const ctx = contexts.get(request);
    if (ctx) metrics.observeQueriesPerRequest(route, ctx.queries);
  });

  installSecurityHeaders(app, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        // With an edge, its URL and the origin's (images point to one or the other).
        imgSrc: ["'self'", 'data:', 'https:', ...(settings.media?.hosts ?? [])],
        styleSrc: ["'self'", "'unsafe-inline'"],
        scriptSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        upgradeInsecureRequests: null,
      },
    },
    crossOriginResourcePolicy: { policy: 'same-site' },
    hsts: false,
    // Our own form posts must carry a real Origin (no-referrer makes browsers send "Origin: null", which is refused).
    referrerPolicy: { policy: 'same-origin' },
  });
  await app.register(cookie);
  await app.register(formbody, { bodyLimit: 16 * 1024 });
  await app.register(multipart, {
    limits: { fileSize: settings.uploadMaxBytes, files: 1, fields: 8, fieldSize: 16 * 1024, parts: 10 },
    throwFileSizeLimit: true,
  });
  const consistency = options.consistency ?? noConsistency;
  installAuth(
    app,
    options.sessions,
    consistency,
    options.secureCookies,
    options.secret,
    [settings.publicUrl, settings.media?.origin].filter((u): u is string => Boolean(u)),
  );
  installIdempotency(app, {
    store: options.idempotency,
    secret: options.secret,
    ttlSeconds: options.idempotencyTtlSeconds ?? 86_400,
    leaseMs: options.idempotencyLeaseMs ?? 10_000,
  });
  app.addHook('onRequest', async (request) => {
    const ctx = currentRequestContext();
    if (ctx) contexts.set(request, ctx);
  });
  app.addHook('preHandler', async (request) => {
    if (!request.viewer) return;
    // A count of the day's users is no reason to refuse or hold a read: its row is waited for at most
    // `activityWaitMs` (a primary that takes longer is waiting out a failover, or is another data center's,
    // lost), then written on in the background; one that cannot be written is written at the user's next request.
    // It is written in a scope of its own: the request's reads still go to a replica, and its answer asks the
    // primary for no new read-your-writes position (both wait for a lost primary), for a row nobody reads back.
    const { userId } = request.viewer;
    let marking: Promise<void> | undefined;
    consistency.scope(() => {
      marking = services.activity.markActive(userId);
    });
    const marked = (marking as Promise<void>).then(
      () => true,
      (err: unknown) => {
        if (err instanceof StoreUnavailableError)
          request.log.warn({ err: err.message }, 'daily active user not recorded: the store is unavailable');
        else request.log.error({ err }, 'daily active user not recorded');
        return true;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([marked, new Promise((r) => (timer = setTimeout(r, activityWaitMs)))]);
    clearTimeout(timer);
  });

  const assets = await loadAssets(publicDir);
  installErrorHandlers(app, (request, reply, error) =>
    errorPage(
      { viewer: request.viewer, csrf: reply.csrfToken(), stylesheet: assets.url('style.css') },
      error.status,
      error.status === 401 ? 'Log in to see this page.' : error.message,
      request.id,
    ),
  );

  await app.register(
    async (api) => {
      await api.register(swagger, {
        openapi: {
          openapi: '3.0.3',
          info: {
            title: 'scaleout API',
            version: '1',
            description: 'Photo sharing: accounts, photos, follows, likes, feed.',
            license: { name: 'MIT', url: 'https://opensource.org/licenses/MIT' },
          },
          // The configured public URL, else relative: the origin that served this document.
          servers: [{ url: settings.publicUrl?.replace(/\/$/, '') || '/', description: 'this site' }],
          components: {
            securitySchemes: {
              bearer: { type: 'http', scheme: 'bearer' },
              cookie: { type: 'apiKey', in: 'cookie', name: 'sid' },
            },
          },
          security: [{ bearer: [] }, { cookie: [] }],
        },
        transform: jsonSchemaTransform,
      });
      await api.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
      api.get('/openapi.json', { schema: { hide: true } }, async () => api.swagger());
      api.addHook('onRequest', requireApiContentType);
      await api.register(accountRoutes(services));
      await api.register(photoRoutes(services, settings));
    },
    { prefix: '/api/v1' },
  );
  await app.register(
    htmlRoutes(services, {
      ...settings,
      stylesheetUrl: assets.url('style.css'),
      fallbackScriptUrl: assets.url('fallback.js'),
    }),
  );
  await app.register(mediaRoutes(services));
  await app.register(assets.plugin);
  await app.register(healthRoutes(options.readiness, options.version, options.drain, bodies.receiving));
  return app;
}
