import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { notFound } from '../errors.ts';
import { idPattern } from '../ids.ts';
import type { Services } from './context.ts';

const params = z.object({ id: z.string().regex(idPattern), file: z.enum(['thumb.webp', 'display.webp']) });

/** Photo variants. A photo's variants never change, so they may be cached for a year. */
export function mediaRoutes(services: Services): FastifyPluginAsync {
  return async (app) => {
    app.get('/media/photos/:id/:file', async (request, reply) => {
      const parsed = params.safeParse(request.params);
      if (!parsed.success) throw notFound('image');
      const name = parsed.data.file === 'thumb.webp' ? 'thumb' : 'display';
      const blob = await services.photos.variant(parsed.data.id, name);
      if (!blob) throw notFound('image');
      return (
        reply
          .type(blob.contentType)
          .header('cache-control', 'public, max-age=31536000, immutable')
          .header('x-content-type-options', 'nosniff')
          // Served from a CDN edge, a page's images come from another origin (another site, for an IP address).
          .header('cross-origin-resource-policy', 'cross-origin')
          .send(blob.data)
      );
    });
  };
}
