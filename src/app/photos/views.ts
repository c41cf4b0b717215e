import { absent, type Cache, isAbsent, readGrace, withGrace } from '../../ports/cache.ts';
import { preferPrimary } from '../../ports/db.ts';
import type { PhotoRepository, PhotoRow } from './repository.ts';

/** A photo as cached and mapped: JSON-safe, with no viewer-specific fields. */
export interface PhotoView extends Omit<PhotoRow, 'createdAt'> {
  createdAt: string;
}

export const photoCacheKey = (id: string) => `photo:${id}`;
export const toPhotoView = (row: PhotoRow): PhotoView => ({ ...row, createdAt: row.createdAt.toISOString() });

/** How long a photo stays fresh in the cache (every change deletes it anyway); it is kept for grace after. */
const photoTtlSeconds = 60;
/** How long "no such photo" is remembered (a deleted photo's id left in a feed). */
const absentTtlSeconds = 30;

/**
 * Photos by id, for a page: from the cache, and the misses in one query on
 * the primary (a value read from a lagging replica would be served to
 * everyone until it expires), which fills the cache; while the primary is
 * late, a replica's rows are served and not kept. Settled photos are
 * cached (a processing one changes soon); missing ids are remembered as
 * absent for a while, so a deleted photo still named somewhere costs no
 * query. A photo past its TTL is read again; if the database fails, the
 * cached one is served instead (grace).
 */
export async function photoViews(
  cache: Cache,
  photos: PhotoRepository,
  ids: string[],
): Promise<Map<string, PhotoView>> {
  const out = new Map<string, PhotoView>();
  const known = await Promise.all(ids.map(async (id) => readGrace<PhotoView>(await cache.get(photoCacheKey(id)))));
  const missing: string[] = [];
  const stale = new Map<string, PhotoView>();
  ids.forEach((id, i) => {
    const hit = known[i];
    if (hit === undefined || !hit.fresh) {
      missing.push(id);
      if (hit && !isAbsent(hit.value)) stale.set(id, hit.value);
    } else if (!isAbsent(hit.value)) out.set(id, hit.value);
  });
  if (missing.length === 0) return out;
  // Leases first: a like or a delete that lands while the query runs wins over what it read.
  const leases = await Promise.all(missing.map((id) => cache.lease(photoCacheKey(id))));
  let rows: PhotoRow[];
  let from: 'primary' | 'replica';
  try {
    // From the primary, so that the cache never keeps a lagging replica's rows; a primary that is late (a
    // failover, the primary data center lost) gives way to a replica that has them all, and nothing is kept.
    ({ value: rows, from } = await preferPrimary(
      () => photos.getMany(missing),
      () => photos.getMany(missing, false),
      { usable: (found) => found.length === missing.length },
    ));
  } catch (err) {
    // Grace: with the database failing, the copies past their TTL are served (ids with none are left out).
    if (stale.size === 0) throw err;
    for (const [id, view] of stale) out.set(id, view);
    return out;
  }
  for (const row of rows) out.set(row.id, toPhotoView(row));
  if (from === 'replica') {
    for (const [id, view] of stale) if (!out.has(id)) out.set(id, view);
    return out;
  }
  await Promise.all(
    missing.map((id, i) => {
      const view = out.get(id);
      if (!view) return cache.set(photoCacheKey(id), absent, absentTtlSeconds, leases[i]);
      if (view.status === 'processing') return undefined;
      const { entry, ttl } = withGrace(view, photoTtlSeconds);
      return cache.set(photoCacheKey(id), entry, ttl, leases[i]);
    }),
  );
  return out;
}
