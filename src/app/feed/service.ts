import type { Cache } from '../../ports/cache.ts';
import type { FeedMetrics } from '../../ports/metrics.ts';
import { type TimelineEntry, TimelineUnavailableError } from '../../ports/timelines.ts';
import { type Cursor, decodeCursor, encodeCursor } from '../cursor.ts';
import { notFound } from '../errors.ts';
import { likedByCached } from '../photos/liked.ts';
import type { PhotoRepository } from '../photos/repository.ts';
import { type PhotoView, photoViews, toPhotoView } from '../photos/views.ts';
import type { UserRepository } from '../users/repository.ts';
import type { Timelines } from './timelines.ts';

export const pageSize = 20;

export interface FeedItem extends PhotoView {
  likedByMe: boolean;
}

/** Entries read beyond a page, so that a few not shown (processing, deleted) rarely cost a second read. */
const slack = 4;

export function createFeedService(deps: {
  photos: PhotoRepository;
  users: UserRepository;
  cache: Cache;
  metrics: FeedMetrics;
  /** Precomputed home feeds; without them the feed is fanned out on read from the database. */
  timelines?: Timelines;
}) {
  const { photos, users, cache, metrics, timelines } = deps;

  const withLikes = async (views: PhotoView[], viewerId: string | undefined, limit: number) => {
    const items = views.slice(0, limit);
    const liked = viewerId
      ? await likedByCached(
          cache,
          photos,
          viewerId,
          items.map((v) => v.id),
        )
      : new Set();
    const last = items.at(-1);
    return {
      items: items.map((v): FeedItem => ({ ...v, likedByMe: liked.has(v.id) })),
      nextCursor:
        views.length > limit && last ? encodeCursor({ createdAt: new Date(last.createdAt), id: last.id }) : null,
    };
  };

  /** Up to `count` photos of the feed fanned out on read: one query over the photos of everyone followed. */
  const fromDatabase = async (userId: string, cursor: Cursor | undefined, count: number) =>
    // The repository reads one more than its limit (for a next page).
    (await photos.feed(userId, { cursor, limit: Math.max(0, count - 1) })).slice(0, count).map(toPhotoView);

  /**
   * The feed from the precomputed timelines: entries, then the photos from the
   * cache. Shown: ready photos, and the viewer's own while processing. Where
   * the timelines end but were cut to their cap, the rest comes from the database.
   */
  const fromTimelines = async (timelines: Timelines, userId: string, cursor: Cursor | undefined, limit: number) => {
    const shown: PhotoView[] = [];
    let before: TimelineEntry | undefined = cursor && { id: cursor.id, at: cursor.createdAt.getTime() };
    for (let round = 0; round < 5 && shown.length < limit; round++) {
      const want = limit + slack;
      const read = await timelines.home(userId, before, want);
      const views = await photoViews(
        cache,
        photos,
        read.entries.map((e) => e.id),
      );
      for (const e of read.entries) {
        const v = views.get(e.id);
        if (v && (v.status === 'ready' || (v.ownerId === userId && v.status === 'processing'))) shown.push(v);
      }
      before = read.entries.at(-1) ?? before;
      if (read.entries.length < want) {
        if (!read.complete && shown.length < limit) {
          const rest = before && { createdAt: new Date(before.at), id: before.id };
          shown.push(...(await fromDatabase(userId, rest, limit - shown.length)));
        }
        break;
      }
    }
    return shown;
  };

  return {
    /** Photos of the people `userId` follows and their own, newest first. */
    async home(userId: string, cursorText?: string, limit = pageSize) {
      const cursor = decodeCursor(cursorText);
      // One more than a page says whether there is a next one.
      if (!timelines) return withLikes(await fromDatabase(userId, cursor, limit + 1), userId, limit);
      try {
        return withLikes(await fromTimelines(timelines, userId, cursor, limit + 1), userId, limit);
      } catch (err) {
        if (!(err instanceof TimelineUnavailableError)) throw err;
        metrics.timelineFailed('read');
        return withLikes(await fromDatabase(userId, cursor, limit + 1), userId, limit);
      }
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
      return withLikes(rows.map(toPhotoView), viewerId, limit);
    },
  };
}

export type FeedService = ReturnType<typeof createFeedService>;
