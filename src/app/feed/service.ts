import type { Cache } from '../../ports/cache.ts';
import { decodeCursor, page } from '../cursor.ts';
import { notFound } from '../errors.ts';
import { likedByCached } from '../photos/liked.ts';
import type { PhotoRepository, PhotoRow } from '../photos/repository.ts';
import { type PhotoView, toPhotoView } from '../photos/service.ts';
import type { UserRepository } from '../users/repository.ts';

export const pageSize = 20;

export interface FeedItem extends PhotoView {
  likedByMe: boolean;
}

export function createFeedService(deps: { photos: PhotoRepository; users: UserRepository; cache: Cache }) {
  const { photos, users, cache } = deps;

  const withLikes = async (rows: PhotoRow[], viewerId: string | undefined, limit: number) => {
    const liked = viewerId
      ? await likedByCached(
          cache,
          photos,
          viewerId,
          rows.slice(0, limit).map((r) => r.id),
        )
      : new Set();
    return page(rows, limit, (row): FeedItem => ({ ...toPhotoView(row), likedByMe: liked.has(row.id) }));
  };

  return {
    /** Photos of the people `userId` follows and their own, newest first. */
    async home(userId: string, cursorText?: string, limit = pageSize) {
      const rows = await photos.feed(userId, { cursor: decodeCursor(cursorText), limit });
      return withLikes(rows, userId, limit);
    },

    /** One user's photos; the owner also sees those still processing. */
    async profile(username: string, viewerId: string | undefined, cursorText?: string, limit = pageSize) {
      const cursor = decodeCursor(cursorText);
      const owner = await users.getByUsername(username);
      if (!owner) throw notFound('user');
      const rows = await photos.listByOwner(owner.id, {
        cursor,
        limit,
        includeUnready: owner.id === viewerId,
      });
      return withLikes(rows, viewerId, limit);
    },
  };
}

export type FeedService = ReturnType<typeof createFeedService>;
