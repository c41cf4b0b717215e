import { type Cache, cached } from '../../ports/cache.ts';
import type { FeedMetrics } from '../../ports/metrics.ts';
import { type TimelineEntry, type TimelineRead, TimelineUnavailableError } from '../../ports/timelines.ts';
import { type Cursor, decodeCursor, encodeCursor } from '../cursor.ts';
import { notFound } from '../errors.ts';
import { likedByCached } from '../photos/liked.ts';
import type { PhotoRepository } from '../photos/repository.ts';
import { type PhotoView, photoViews, toPhotoView } from '../photos/views.ts';
import type { UserRepository } from '../users/repository.ts';
import { userIdCacheKey } from '../users/service.ts';
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
  /** Where "liked by me" is cached: `cache`, or nothing where web servers cannot tell each other of deletes. */
  viewerCache?: Cache;
  metrics: FeedMetrics;
  /** Precomputed home feeds; without them the feed is fanned out on read from the database. */
  timelines?: Timelines;
}) {
  const { photos, users, cache, metrics, timelines } = deps;
  const viewerCache = deps.viewerCache ?? cache;

  const withLikes = async (views: PhotoView[], viewerId: string | undefined, limit: number) => {
    const items = views.slice(0, limit);
    const liked = viewerId
      ? await likedByCached(
          viewerCache,
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
   * A page from precomputed timelines: entries, then the photos from the
   * cache, those `shows` accepts. Where the timelines end but were cut to
   * their cap, the rest comes from the database.
   */
  const fromTimelines = async (
    read: (before: TimelineEntry | undefined, want: number) => Promise<TimelineRead>,
    shows: (photo: PhotoView) => boolean,
    cursor: Cursor | undefined,
    limit: number,
    rest: (cursor: Cursor | undefined, count: number) => Promise<PhotoView[]>,
  ) => {
    const shown: PhotoView[] = [];
    let before: TimelineEntry | undefined = cursor && { id: cursor.id, at: cursor.createdAt.getTime() };
    for (let round = 0; round < 5 && shown.length < limit; round++) {
      const want = limit + slack;
      const page = await read(before, want);
      const views = await photoViews(
        cache,
        photos,
        page.entries.map((e) => e.id),
      );
      for (const e of page.entries) {
        const v = views.get(e.id);
        if (v && shows(v)) shown.push(v);
      }
      before = page.entries.at(-1) ?? before;
      if (page.entries.length < want) {
        if (!page.complete && shown.length < limit) {
          shown.push(
            ...(await rest(before && { createdAt: new Date(before.at), id: before.id }, limit - shown.length)),
          );
        }
        break;
      }
    }
    return shown;
  };

  /** Up to `count` of one owner's photos from the database (only ready ones unless the viewer owns them). */
  const ownerFromDatabase = async (
    ownerId: string,
    viewerId: string | undefined,
    cursor: Cursor | undefined,
    count: number,
  ) =>
    (
      await photos.listByOwner(ownerId, {
        cursor,
        limit: Math.max(0, count - 1),
        includeUnready: ownerId === viewerId,
      })
    )
      .slice(0, count)
      .map(toPhotoView);

  /** An account's id by name, cached (names and ids never change; a sign-up deletes a cached "no such user"). */
  const ownerId = async (username: string) =>
    cached(cache, userIdCacheKey(username), async () => (await users.getByUsername(username))?.id, 3600);

  return {
    /** Photos of the people `userId` follows and their own, newest first. */
    async home(userId: string, cursorText?: string, limit = pageSize) {
      const cursor = decodeCursor(cursorText);
      // One more than a page says whether there is a next one.
      if (!timelines) return withLikes(await fromDatabase(userId, cursor, limit + 1), userId, limit);
      try {
        const shown = await fromTimelines(
          (before, want) => timelines.home(userId, before, want),
          // Ready photos, and the viewer's own while processing.
          (v) => v.status === 'ready' || (v.ownerId === userId && v.status === 'processing'),
          cursor,
          limit + 1,
          (rest, count) => fromDatabase(userId, rest, count),
        );
        return withLikes(shown, userId, limit);
      } catch (err) {
        if (!(err instanceof TimelineUnavailableError)) throw err;
        metrics.timelineFailed('read');
        return withLikes(await fromDatabase(userId, cursor, limit + 1), userId, limit);
      }
    },

    /** One user's photos; the owner also sees those still processing. From their author timeline where kept. */
    async profile(username: string, viewerId: string | undefined, cursorText?: string, limit = pageSize) {
      const cursor = decodeCursor(cursorText);
      const owner = await ownerId(username);
      if (!owner) throw notFound('user');
      const fromDb = () => ownerFromDatabase(owner, viewerId, cursor, limit + 1);
      if (!timelines) return withLikes(await fromDb(), viewerId, limit);
      try {
        const shown = await fromTimelines(
          (before, want) => timelines.author(owner, before, want),
          // Others see ready photos; the owner sees them all (as the database read does).
          (v) => v.status === 'ready' || owner === viewerId,
          cursor,
          limit + 1,
          (rest, count) => ownerFromDatabase(owner, viewerId, rest, count),
        );
        return withLikes(shown, viewerId, limit);
      } catch (err) {
        if (!(err instanceof TimelineUnavailableError)) throw err;
        metrics.timelineFailed('read');
        return withLikes(await fromDb(), viewerId, limit);
      }
    },
  };
}

export type FeedService = ReturnType<typeof createFeedService>;
