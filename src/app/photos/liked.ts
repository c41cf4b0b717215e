import type { Cache } from '../../ports/cache.ts';
import type { PhotoRepository } from './repository.ts';

/** "Did this user like this photo", cached per pair: the like and the unlike delete it. */
export const likedKey = (userId: string, photoId: string) => `liked:${userId}:${photoId}`;

/**
 * Which of `photoIds` the user liked: from the cache where it knows, and the
 * rest in one query, which then fills the cache. A page of a feed read twice
 * asks the database nothing the second time.
 */
export async function likedByCached(
  cache: Cache,
  photos: PhotoRepository,
  userId: string,
  photoIds: string[],
): Promise<Set<string>> {
  const known = await Promise.all(photoIds.map((id) => cache.get<boolean>(likedKey(userId, id))));
  const unknown = photoIds.filter((_, i) => known[i] === undefined);
  if (unknown.length === 0) return new Set(photoIds.filter((_, i) => known[i] === true));
  const leases = await Promise.all(unknown.map((id) => cache.lease(likedKey(userId, id))));
  const fromDb = await photos.likedBy(userId, unknown);
  await Promise.all(unknown.map((id, i) => cache.set(likedKey(userId, id), fromDb.has(id), 60, leases[i])));
  return new Set(photoIds.filter((id, i) => known[i] === true || fromDb.has(id)));
}
