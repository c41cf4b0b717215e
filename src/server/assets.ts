import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';

const types: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

export interface Assets {
  /** The content-hashed URL of a file in public/, e.g. /static/style.3f9a1c2b.css. */
  url(name: string): string;
  plugin: FastifyPluginAsync;
}

/**
 * Loads public/ once at start and serves each file under a name that holds a
 * hash of its content, so browsers and CDNs may keep it for a year: a change
 * makes a new name.
 */
export async function loadAssets(dir: string): Promise<Assets> {
  const byUrl = new Map<string, { body: Buffer; type: string }>();
  const urls = new Map<string, string>();
  for (const name of await readdir(dir)) {
    const body = await readFile(path.join(dir, name));
    const ext = path.extname(name);
    const hash = createHash('sha256').update(body).digest('hex').slice(0, 10);
    const url = `/static/${path.basename(name, ext)}.${hash}${ext}`;
    urls.set(name, url);
    byUrl.set(url, { body, type: types[ext] ?? 'application/octet-stream' });
  }
  return {
    url(name) {
      const url = urls.get(name);
      if (!url) throw new Error(`no asset named ${name} in ${dir}`);
      return url;
    },
    plugin: async (app) => {
      app.get('/static/:file', async (request, reply) => {
        const asset = byUrl.get(request.url.split('?')[0] ?? '');
        if (!asset) return reply.callNotFound();
        return reply.type(asset.type).header('cache-control', 'public, max-age=31536000, immutable').send(asset.body);
      });
    },
  };
}
