import { absent, type Cache, isAbsent } from '../../ports/cache.ts';
import type { PhotoRepository, PhotoRow } from './repository.ts';

/** A photo as cached and mapped: JSON-safe, with no viewer-specific fields. */
export interface PhotoView extends Omit<PhotoRow, 'createdAt'> {
  createdAt: string;
}

export const photoCacheKey = (id: string) => `photo:${id}`;
export const toPhotoView = (row: PhotoRow): PhotoView => ({ ...row, createdAt: row.createdAt.toISOString() });

/** How long "no such photo" is remembered (a deleted photo's id left in a feed). */
const absentTtlSeconds = 30;

/**
 * Photos by id, for a page: from the cache, and the misses in one query on
 * the primary (a value read from a lagging replica would be served to
 * everyone until it expires), which fills the cache. Settled photos are
 * cached (a processing one changes soon); missing ids are remembered as
 * absent for a while, so a deleted photo still named somewhere costs no query.
 */
export async function photoViews(
  cache: Cache,
  photos: PhotoRepository,
  ids: string[],
): Promise<Map<string, PhotoView>> {
  const out = new Map<string, PhotoView>();
  const known = await Promise.all(ids.map((id) => cache.get<PhotoView | typeof absent>(photoCacheKey(id))));
  const missing: string[] = [];
  ids.forEach((id, i) => {
    const hit = known[i];
    if (hit === undefined) missing.push(id);
    else if (!isAbsent(hit)) out.set(id, hit as PhotoView);
  });
  if (missing.length === 0) return out;
  // Leases first: a like or a delete that lands while the query runs wins over what it read.
  const leases = await Promise.all(missing.map((id) => cache.lease(photoCacheKey(id))));
  const rows = await photos.getMany(missing);
  for (const row of rows) out.set(row.id, toPhotoView(row));
  await Promise.all(
    missing.map((id, i) => {
      const view = out.get(id);
      if (!view) return cache.set(photoCacheKey(id), absent, absentTtlSeconds, leases[i]);
      return view.status === 'processing' ? undefined : cache.set(photoCacheKey(id), view, undefined, leases[i]);
    }),
  );
  return out;
}
