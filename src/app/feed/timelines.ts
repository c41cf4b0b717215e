import { type Cache, cached } from '../../ports/cache.ts';
import type { FeedMetrics } from '../../ports/metrics.ts';
import {
  newestFirst,
  olderThan,
  type TimelineEntry,
  type TimelineRead,
  type TimelineStore,
} from '../../ports/timelines.ts';
import type { PhotoRepository } from '../photos/repository.ts';
import type { SocialRepository } from '../social/repository.ts';

export interface TimelineSettings {
  /** Entries per timeline (the cap of a rebuild's read too). */
  maxEntries: number;
  /** Authors with more followers are merged in at read time instead of pushed (the hybrid). */
  fanoutMaxFollowers: number;
}

export const homeTimeline = (userId: string) => `home:${userId}`;
export const authorTimeline = (userId: string) => `author:${userId}`;
export const followingKey = (userId: string) => `following:${userId}`;
export const followersKey = (userId: string) => `followers:${userId}`;
const popularKey = 'popular:authors';

/** A photo as the timelines see it. */
export interface TimelinePhoto {
  id: string;
  ownerId: string;
  createdAt: Date | string;
}
const entryOf = (p: TimelinePhoto): TimelineEntry => ({ id: p.id, at: new Date(p.createdAt).getTime() });

/**
 * Precomputed home feeds, fanned out on write as Mastodon and Twitter do, with
 * Twitter's hybrid for popular authors:
 * - an upload goes at once to its owner's home timeline (they see it processing);
 * - a photo becoming ready goes to its author's timeline and to the home
 *   timeline of each follower that exists (a follower who has not read their
 *   feed for `feedActiveDays` has none: it expired), unless the author has
 *   more than `fanoutMaxFollowers` followers; such an author's photos are
 *   merged in from their author timeline when a follower reads;
 * - a timeline that is missing is rebuilt from the database by the read that
 *   finds it missing, which returns the full page;
 * - a follow merges the author's recent photos in, an unfollow takes them
 *   out, a delete removes the photo from every timeline it was pushed to.
 * Every write here is best effort (the timelines are a cache): a failure is
 * counted and logged by the caller, never the user's.
 */
export function createTimelines(deps: {
  store: TimelineStore;
  photos: PhotoRepository;
  social: SocialRepository;
  cache: Cache;
  metrics: FeedMetrics;
  settings: TimelineSettings;
}) {
  const { store, photos, social, cache, metrics, settings } = deps;
  const building = new Map<string, Promise<TimelineRead>>();

  /**
   * Runs a timeline write; a failure (the store down or failing over) is
   * counted, and the write is tried again in the background after 1, 2, 4
   * and 8 s, which outlasts a Sentinel failover. The caller never waits for
   * the retries or sees the failure.
   */
  const bestEffort = async (operation: string, write: () => Promise<void>): Promise<void> => {
    try {
      await write();
    } catch {
      metrics.timelineFailed(operation);
      const retry = (delayMs: number) => {
        setTimeout(() => {
          write().catch(() => {
            metrics.timelineFailed(operation);
            if (delayMs < 8000) retry(delayMs * 2);
          });
        }, delayMs).unref();
      };
      retry(1000);
    }
  };

  /** The timeline's page, rebuilding it first when it is missing (one rebuild per timeline at a time here). */
  const readOrBuild = async (
    owner: string,
    load: () => Promise<TimelineEntry[]>,
    before: TimelineEntry | undefined,
    limit: number,
  ): Promise<TimelineRead> => {
    const found = await store.read(owner, { before, limit });
    if (found) return found;
    let build = building.get(owner);
    if (!build) {
      build = (async () => {
        metrics.timelineRebuilt(owner.slice(0, owner.indexOf(':')));
        await store.beginBuild(owner);
        const entries = await load();
        const complete = entries.length < settings.maxEntries;
        await store.finishBuild(owner, entries, complete);
        return { entries: entries.sort(newestFirst), complete };
      })();
      building.set(owner, build);
      build.finally(() => building.delete(owner)).catch(() => {});
    }
    const all = await build;
    return { entries: all.entries.filter((e) => olderThan(e, before)).slice(0, limit), complete: all.complete };
  };

  const following = async (userId: string) =>
    (await cached(cache, followingKey(userId), async () => [...(await social.followingIds(userId))], 300)) ?? [];
  const popular = async () =>
    (await cached(cache, popularKey, () => social.popular(settings.fanoutMaxFollowers), 30)) ?? [];
  const followers = async (userId: string) =>
    (await cached(cache, followersKey(userId), () => social.followerIds(userId), 300)) ?? [];
  const cap = settings.maxEntries;
  /**
   * The timelines a photo of `ownerId` goes to: theirs (author and home) and,
   * unless they are popular, each follower's home. `fannedOut` is how many followers.
   */
  const targetsOf = async (ownerId: string) => {
    const fans = await followers(ownerId);
    const fanout = fans.length <= settings.fanoutMaxFollowers;
    const timelines = [authorTimeline(ownerId), homeTimeline(ownerId), ...(fanout ? fans.map(homeTimeline) : [])];
    return { timelines, fannedOut: fanout ? fans.length : 0, popular: !fanout };
  };
  const authorEntries = (ownerId: string) => () => photos.authorEntries(ownerId, cap);

  return {
    /**
     * Up to `limit` entries of `userId`'s home feed older than `before`: their
     * timeline merged with the author timelines of the popular people they
     * follow. `complete` false means older entries may exist beyond the caps.
     */
    async home(userId: string, before: TimelineEntry | undefined, limit: number): Promise<TimelineRead> {
      const [own, followed, popularIds] = await Promise.all([
        readOrBuild(homeTimeline(userId), () => photos.homeEntries(userId, settings.maxEntries), before, limit),
        following(userId),
        popular(),
      ]);
      const popularSet = new Set(popularIds);
      const merged = followed.filter((id) => popularSet.has(id));
      if (merged.length === 0) return own;
      const theirs = await Promise.all(
        merged.map((id) => readOrBuild(authorTimeline(id), authorEntries(id), before, limit)),
      );
      const seen = new Set<string>();
      const entries = [own, ...theirs]
        .flatMap((r) => r.entries)
        .sort(newestFirst)
        .filter((e) => !seen.has(e.id) && seen.add(e.id))
        .slice(0, limit);
      return { entries, complete: own.complete && theirs.every((r) => r.complete) };
    },

    /** Up to `limit` entries of one author's photos older than `before` (their profile). */
    author: (userId: string, before: TimelineEntry | undefined, limit: number): Promise<TimelineRead> =>
      readOrBuild(authorTimeline(userId), authorEntries(userId), before, limit),

    /** An upload: into its owner's home timeline at once, so they see it processing. */
    uploaded: (photo: TimelinePhoto): Promise<void> =>
      bestEffort('upload', () =>
        store.push([homeTimeline(photo.ownerId), authorTimeline(photo.ownerId)], entryOf(photo)),
      ),

    /** A photo about to be shown: into its author's timeline and, unless the author is popular, its followers'. */
    ready: (photo: TimelinePhoto): Promise<void> =>
      bestEffort('fanout', async () => {
        const started = performance.now();
        const targets = await targetsOf(photo.ownerId);
        await store.push(targets.timelines, entryOf(photo));
        metrics.fannedOut(targets.fannedOut, (performance.now() - started) / 1000);
        // An author who just became popular: readers must merge them in from now on, not in 30 s.
        if (targets.popular && !(await popular()).includes(photo.ownerId)) await cache.delete(popularKey);
      }),

    /** A deleted photo leaves every timeline it was pushed to. */
    deleted: (photo: TimelinePhoto): Promise<void> =>
      bestEffort('delete', async () => {
        await store.remove((await targetsOf(photo.ownerId)).timelines, photo.id);
      }),

    /** A follow: the author's recent photos merged into the follower's home timeline (a popular author's are merged at read). */
    async followed(followerId: string, followeeId: string): Promise<void> {
      await cache.delete(followingKey(followerId), followersKey(followeeId));
      await bestEffort('follow', async () => {
        const author = await readOrBuild(authorTimeline(followeeId), authorEntries(followeeId), undefined, cap);
        await store.merge(homeTimeline(followerId), author.entries);
      });
    },

    /** An unfollow: the author's photos taken out of the follower's home timeline. */
    async unfollowed(followerId: string, followeeId: string): Promise<void> {
      await cache.delete(followingKey(followerId), followersKey(followeeId));
      await bestEffort('unfollow', async () => {
        const author = await readOrBuild(authorTimeline(followeeId), authorEntries(followeeId), undefined, cap);
        await store.unmerge(
          homeTimeline(followerId),
          author.entries.map((e) => e.id),
        );
      });
    },
  };
}

export type Timelines = ReturnType<typeof createTimelines>;
