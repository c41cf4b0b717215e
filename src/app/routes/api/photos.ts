import type { SwaggerTransform } from '@fastify/swagger';
import type { FastifyPluginAsync } from 'fastify';
import { jsonSchemaTransform, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { badRequest } from '../../errors.ts';
import { mediaBase, type RouteSettings, requireViewer, type Services } from '../context.ts';
import { mapPhoto } from '../mappers.ts';
import { captionMaxLength, readUploadForm } from '../upload.ts';
import { cursorQuery, errors, photo, photoPage, photoParams, usernameParams } from './schemas.ts';

/** The upload's multipart/form-data body, in the OpenAPI document. */
const describeUploadBody: SwaggerTransform = (route) => {
  const transformed = jsonSchemaTransform(route as Parameters<typeof jsonSchemaTransform>[0]);
  const body = {
    type: 'object',
    required: ['file'],
    properties: {
      file: { type: 'string', format: 'binary', description: 'JPEG, PNG, WebP, AVIF or GIF' },
      caption: { type: 'string', maxLength: captionMaxLength },
    },
  };
  return { ...transformed, schema: { ...transformed.schema, body } };
};

/** Upload, read and delete photos; a user's photos; likes; the home feed. */
export function photoRoutes(services: Services, settings: RouteSettings): FastifyPluginAsync {
  return async (app) => {
    const r = app.withTypeProvider<ZodTypeProvider>();

    r.post('/photos', {
      // The multipart body is read by the handler, not validated by a schema; this describes it for clients.
      config: { swaggerTransform: describeUploadBody, multipart: true },
      schema: {
        tags: ['photos'],
        operationId: 'uploadPhoto',
        summary: 'Upload a photo (multipart: file, caption); variants are made by a job',
        consumes: ['multipart/form-data'],
        response: {
          // Processing, unless it is the answer to a repeated Idempotency-Key whose first answer was lost.
          202: z.object({ photo: z.object({ id: z.string(), status: z.enum(['processing', 'ready', 'failed']) }) }),
          ...errors(400, 401, 409, 413, 415, 422),
        },
      },
      handler: async (request, reply) => {
        const viewer = requireViewer(request);
        const form = await readUploadForm(request, ['caption']);
        if (await request.claimIdempotency(reply, form.fields, form.file)) return reply;
        if (!form.file) throw badRequest('the file field is missing', 'VALIDATION');
        const created = await services.photos.upload(
          viewer.userId,
          { data: form.file, caption: form.fields.caption ?? '' },
          request.idempotencyKey ?? undefined,
        );
        return reply.code(202).send({ photo: created });
      },
    });

    r.get('/photos/:id', {
      schema: {
        tags: ['photos'],
        operationId: 'getPhoto',
        summary: 'One photo with its status, like count and variant URLs',
        params: photoParams,
        response: { 200: z.object({ photo }), ...errors(400, 404) },
      },
      handler: async (request) => {
        const view = await services.photos.get(request.params.id, request.viewer?.userId);
        const liked = request.viewer ? await services.photos.likedBy(request.viewer.userId, view.id) : false;
        return { photo: mapPhoto(view, mediaBase(request, settings), liked) };
      },
    });

    r.delete('/photos/:id', {
      schema: {
        tags: ['photos'],
        operationId: 'deletePhoto',
        summary: 'Delete your photo',
        params: photoParams,
        response: { 204: z.null(), ...errors(400, 401, 403, 404) },
      },
      handler: async (request, reply) => {
        await services.photos.delete(request.params.id, requireViewer(request).userId);
        return reply.code(204).send(null);
      },
    });

    r.put('/photos/:id/like', {
      schema: {
        tags: ['social'],
        operationId: 'likePhoto',
        summary: 'Like a photo',
        params: photoParams,
        response: { 204: z.null(), ...errors(400, 401, 404) },
      },
      handler: async (request, reply) => {
        await services.social.like(requireViewer(request).userId, request.params.id);
        return reply.code(204).send(null);
      },
    });

    r.delete('/photos/:id/like', {
      schema: {
        tags: ['social'],
        operationId: 'unlikePhoto',
        summary: 'Take a like back',
        params: photoParams,
        response: { 204: z.null(), ...errors(400, 401, 404) },
      },
      handler: async (request, reply) => {
        await services.social.unlike(requireViewer(request).userId, request.params.id);
        return reply.code(204).send(null);
      },
    });

    r.get('/users/:username/photos', {
      schema: {
        tags: ['photos'],
        operationId: 'listUserPhotos',
        summary: "A user's photos, newest first",
        params: usernameParams,
        querystring: cursorQuery,
        response: { 200: photoPage, ...errors(400, 404) },
      },
      handler: async (request) => {
        const result = await services.feed.profile(
          request.params.username,
          request.viewer?.userId,
          request.query.cursor,
        );
        const base = mediaBase(request, settings);
        return { items: result.items.map((p) => mapPhoto(p, base)), nextCursor: result.nextCursor };
      },
    });

    r.put('/users/:username/follow', {
      schema: {
        tags: ['social'],
        operationId: 'followUser',
        summary: 'Follow a user',
        params: usernameParams,
        response: { 204: z.null(), ...errors(400, 401, 404) },
      },
      handler: async (request, reply) => {
        await services.social.follow(requireViewer(request).userId, request.params.username);
        return reply.code(204).send(null);
      },
    });

    r.delete('/users/:username/follow', {
      schema: {
        tags: ['social'],
        operationId: 'unfollowUser',
        summary: 'Unfollow a user',
        params: usernameParams,
        response: { 204: z.null(), ...errors(400, 401, 404) },
      },
      handler: async (request, reply) => {
        await services.social.unfollow(requireViewer(request).userId, request.params.username);
        return reply.code(204).send(null);
      },
    });

    r.get('/feed', {
      schema: {
        tags: ['feed'],
        operationId: 'getFeed',
        summary: 'Home feed: the people you follow and you, newest first',
        querystring: cursorQuery,
        response: { 200: photoPage, ...errors(400, 401) },
      },
      handler: async (request) => {
        const viewer = requireViewer(request);
        const result = await services.feed.home(viewer.userId, request.query.cursor);
        const base = mediaBase(request, settings);
        return { items: result.items.map((p) => mapPhoto(p, base)), nextCursor: result.nextCursor };
      },
    });
  };
}
