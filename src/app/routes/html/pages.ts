import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError, badRequest, unauthorized } from '../../errors.ts';
import { idPattern } from '../../ids.ts';
import type { PageContext } from '../../views/layout.ts';
import * as pages from '../../views/pages.ts';
import { credentials, username as usernameSchema } from '../api/schemas.ts';
import { mediaBase, type RouteSettings, type Services } from '../context.ts';
import { mapPhoto } from '../mappers.ts';
import { idempotencyField, readUploadForm } from '../upload.ts';

export interface HtmlSettings extends RouteSettings {
  stylesheetUrl: string;
  /** The browser's fallback from the edge to the origin (public/fallback.js). */
  fallbackScriptUrl: string;
}

const form = (body: unknown): Record<string, string> =>
  body && typeof body === 'object' ? (body as Record<string, string>) : {};

const usernameParam = z.object({ username: usernameSchema });
const photoParam = z.object({ id: z.string().regex(idPattern) });
const cursorParam = z.object({ cursor: z.string().max(200).optional() });
const peopleQuery = z.object({ q: z.string().max(100).optional() });
/** Where a Follow button of the people page returns to. */
const peopleReturn = /^\/people(\?q=[a-z0-9_]{1,30})?$/;
const parse = <T>(schema: z.ZodType<T>, value: unknown): T => {
  const result = schema.safeParse(value);
  if (!result.success) throw new AppError(404, 'NOT_FOUND', 'page not found');
  return result.data;
};

/** The server-rendered site. Every flow works without JavaScript. */
export function htmlRoutes(services: Services, settings: HtmlSettings): FastifyPluginAsync {
  return async (app) => {
    const ctx = (request: FastifyRequest, reply: FastifyReply, flash?: string): PageContext => ({
      viewer: request.viewer,
      csrf: reply.csrfToken(),
      stylesheet: settings.stylesheetUrl,
      flash,
      media: settings.media?.origin ? { origin: settings.media.origin, script: settings.fallbackScriptUrl } : undefined,
    });
    const send = (reply: FastifyReply, body: string, status = 200) =>
      reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(body);
    const signedIn = (request: FastifyRequest) => {
      if (!request.viewer) throw unauthorized();
      return request.viewer;
    };

    app.get('/', async (request, reply) => {
      if (!request.viewer) return send(reply, pages.landingPage(ctx(request, reply)));
      const { cursor } = parse(cursorParam, request.query);
      const feed = await services.feed.home(request.viewer.userId, cursor);
      const base = mediaBase(request, settings);
      return send(
        reply,
        pages.feedPage(
          ctx(request, reply),
          feed.items.map((p) => mapPhoto(p, base)),
          feed.nextCursor,
        ),
      );
    });

    for (const kind of ['signup', 'login'] as const) {
      app.get(`/${kind}`, async (request, reply) => {
        if (request.viewer) return reply.redirect('/', 303);
        return send(reply, pages.credentialsPage(ctx(request, reply), kind));
      });
      app.post(`/${kind}`, async (request, reply) => {
        const body = form(request.body);
        request.verifyCsrf(body._csrf);
        const parsed = credentials.safeParse({ username: body.username, password: body.password });
        try {
          if (!parsed.success) {
            throw badRequest(
              kind === 'signup'
                ? 'Usernames are 3–30 characters of a-z, 0-9 and _; passwords are at least 10 characters.'
                : 'wrong username or password',
            );
          }
          const { username, password } = parsed.data;
          const previousSessionId = request.viewer?.sessionId;
          const session =
            kind === 'signup'
              ? await services.users.startSession(
                  await services.users.signUp(username, password, request.ip),
                  previousSessionId,
                )
              : await services.users.logIn(username, password, { client: request.ip, previousSessionId });
          reply.startSession(session);
          return reply.redirect('/', 303);
        } catch (err) {
          if (!(err instanceof AppError)) throw err;
          const page = pages.credentialsPage(ctx(request, reply, err.message), kind, String(body.username ?? ''));
          return send(reply, page, err.status);
        }
      });
    }

    app.post('/logout', async (request, reply) => {
      request.verifyCsrf(form(request.body)._csrf);
      if (request.viewer) await services.users.logOut(request.viewer.sessionId);
      reply.endSession();
      return reply.redirect('/', 303);
    });

    app.get('/upload', async (request, reply) => {
      if (!request.viewer) return reply.redirect('/login', 303);
      return send(reply, pages.uploadPage(ctx(request, reply)));
    });

    app.post('/upload', async (request, reply) => {
      const viewer = signedIn(request);
      const upload = await readUploadForm(request, ['_csrf', idempotencyField, 'caption']);
      request.verifyCsrf(upload.fields._csrf);
      if (await request.claimIdempotency(reply, upload.fields, upload.file)) return reply;
      if (!upload.file || upload.file.length === 0) throw badRequest('choose a photo to upload');
      const photo = await services.photos.upload(
        viewer.userId,
        { data: upload.file, caption: upload.fields.caption ?? '' },
        request.idempotencyKey ?? undefined,
      );
      return reply.redirect(`/p/${photo.id}`, 303);
    });

    app.get('/people', async (request, reply) => {
      const { q } = parse(peopleQuery, request.query);
      if (q !== undefined && q !== '' && !/^[a-z0-9_]{1,30}$/.test(q)) {
        throw badRequest('Usernames hold only a-z, 0-9 and _ (at most 30).');
      }
      const found = q ? await services.people.search(q, request.viewer ?? undefined) : null;
      const suggested = await services.people.suggested(request.viewer ?? undefined);
      return send(reply, pages.peoplePage(ctx(request, reply), q ?? '', found, suggested));
    });

    app.get('/u/:username', async (request, reply) => {
      const { username } = parse(usernameParam, request.params);
      const { cursor } = parse(cursorParam, request.query);
      const profile = await services.users.profile(username);
      const viewer = request.viewer;
      const following =
        viewer && viewer.userId !== profile.id
          ? await services.social.isFollowing(viewer.userId, profile.id)
          : undefined;
      const photos = await services.feed.profile(username, viewer?.userId, cursor);
      const base = mediaBase(request, settings);
      const items = photos.items.map((p) => mapPhoto(p, base));
      return send(reply, pages.profilePage(ctx(request, reply), { ...profile, following }, items, photos.nextCursor));
    });

    for (const action of ['follow', 'unfollow'] as const) {
      app.post(`/u/:username/${action}`, async (request, reply) => {
        const viewer = signedIn(request);
        request.verifyCsrf(form(request.body)._csrf);
        const { username } = parse(usernameParam, request.params);
        await services.social[action](viewer.userId, username);
        // From the people page, back to it (only there: never a redirect the form may name freely).
        const back = form(request.body)._return;
        return reply.redirect(back && peopleReturn.test(back) ? back : `/u/${username}`, 303);
      });
    }

    app.get('/p/:id', async (request, reply) => {
      const { id } = parse(photoParam, request.params);
      const photo = await services.photos.get(id, request.viewer?.userId);
      const liked = request.viewer ? await services.photos.likedBy(request.viewer.userId, id) : false;
      return send(reply, pages.photoPage(ctx(request, reply), mapPhoto(photo, mediaBase(request, settings), liked)));
    });

    for (const action of ['like', 'unlike', 'delete'] as const) {
      app.post(`/p/:id/${action}`, async (request, reply) => {
        const viewer = signedIn(request);
        request.verifyCsrf(form(request.body)._csrf);
        const { id } = parse(photoParam, request.params);
        if (action === 'delete') {
          await services.photos.delete(id, viewer.userId);
          return reply.redirect(`/u/${viewer.username}`, 303);
        }
        await services.social[action](viewer.userId, id);
        return reply.redirect(`/p/${id}`, 303);
      });
    }
  };
}
