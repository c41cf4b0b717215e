import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { forbidden } from '../../errors.ts';
import { requireViewer, type Services } from '../context.ts';
import { mapUser } from '../mappers.ts';
import { credentials, errors, user, usernameParams } from './schemas.ts';

/** Sign up, log in (cookie and bearer token), log out, profiles. */
export function accountRoutes(services: Services): FastifyPluginAsync {
  return async (app) => {
    const r = app.withTypeProvider<ZodTypeProvider>();

    r.post('/users', {
      schema: {
        tags: ['accounts'],
        operationId: 'signUp',
        summary: 'Sign up',
        body: credentials,
        response: { 201: z.object({ user: z.object({ username: z.string() }) }), ...errors(400, 409, 429) },
      },
      handler: async (request, reply) => {
        const created = await services.users.signUp(request.body.username, request.body.password, request.ip);
        return reply.code(201).send({ user: { username: created.username } });
      },
    });

    r.post('/sessions', {
      schema: {
        tags: ['accounts'],
        operationId: 'logIn',
        summary: 'Log in: sets the session cookie and returns the same session as a bearer token',
        body: credentials,
        response: { 201: z.object({ token: z.string(), expiresAt: z.string() }), ...errors(400, 401, 429) },
      },
      handler: async (request, reply) => {
        const { username, password } = request.body;
        const session = await services.users.logIn(username, password, {
          client: request.ip,
          previousSessionId: request.viewer?.sessionId,
        });
        reply.startSession(session);
        return reply.code(201).send({ token: session.id, expiresAt: session.expiresAt.toISOString() });
      },
    });

    r.delete('/sessions/current', {
      schema: {
        tags: ['accounts'],
        operationId: 'logOut',
        summary: 'Log out',
        response: { 204: z.null(), ...errors(401) },
      },
      handler: async (request, reply) => {
        await services.users.logOut(requireViewer(request).sessionId);
        reply.endSession();
        return reply.code(204).send(null);
      },
    });

    r.get('/admin/kpis', {
      schema: {
        tags: ['admin'],
        operationId: 'getKpis',
        summary: "Today's business KPIs: daily active users, sign-ups, uploads, likes (admins only)",
        response: {
          200: z.object({
            kpis: z.object({
              day: z.string(),
              dailyActiveUsers: z.number().int(),
              signups: z.number().int(),
              uploads: z.number().int(),
              likes: z.number().int(),
            }),
          }),
          ...errors(401, 403),
        },
      },
      handler: async (request) => {
        const viewer = requireViewer(request);
        if (!(await services.users.isAdmin(viewer.userId))) throw forbidden('admins only');
        return { kpis: await services.activity.kpis() };
      },
    });

    const person = z.object({
      username: z.string(),
      followerCount: z.number().int(),
      /** For a logged-in caller: whether they follow this person. */
      following: z.boolean().optional(),
      /** A suggestion from the recently active accounts (too few most-followed ones to suggest). */
      recentlyActive: z.boolean().optional(),
    });
    r.get('/users', {
      schema: {
        tags: ['people'],
        operationId: 'searchUsers',
        summary: 'Find people by the start of their username',
        querystring: z.strictObject({ q: z.string().regex(/^[a-z0-9_]{1,30}$/, '1–30 characters: a-z, 0-9, _') }),
        response: { 200: z.object({ items: z.array(person) }), ...errors(400) },
      },
      handler: async (request) => ({
        items: (await services.people.search(request.query.q, request.viewer ?? undefined)).map(
          ({ self: _self, ...p }) => p,
        ),
      }),
    });

    r.get('/users/suggested', {
      schema: {
        tags: ['people'],
        operationId: 'suggestedUsers',
        summary:
          'The most-followed people you do not follow yet (everyone’s most-followed when logged out), then recently active ones',
        querystring: z.strictObject({}),
        response: { 200: z.object({ items: z.array(person) }), ...errors(400) },
      },
      handler: async (request) => ({ items: await services.people.suggested(request.viewer ?? undefined) }),
    });

    r.get('/users/:username', {
      schema: {
        tags: ['accounts'],
        operationId: 'getUser',
        summary: 'A profile with its counts',
        params: usernameParams,
        response: { 200: z.object({ user, following: z.boolean().optional() }), ...errors(400, 404) },
      },
      handler: async (request) => {
        const profile = await services.users.profile(request.params.username);
        const viewer = request.viewer;
        const following =
          viewer && viewer.userId !== profile.id
            ? await services.social.isFollowing(viewer.userId, profile.id)
            : undefined;
        return { user: mapUser(profile), following };
      },
    });
  };
}
