import { type Cache, cached } from '../../ports/cache.ts';
import type { SocialRepository } from '../social/repository.ts';
import type { PersonRow, UserRepository } from '../users/repository.ts';

/** Someone to follow, as a list shows them. */
export interface PersonView extends PersonRow {
  /** For a logged-in viewer: whether they follow this person already, and whether it is the viewer. */
  following?: boolean;
  self?: boolean;
  /** A suggestion from the recently active accounts (too few most-followed ones). */
  recentlyActive?: boolean;
}

/** How many a search or a suggestion list returns. */
export const peoplePageSize = 20;

/**
 * Finding people to follow, from the cache tier: a username-prefix search
 * (cached 30 s per prefix) and the most-followed accounts the viewer does not
 * follow yet (the top 100 cached 60 s for everyone, filtered per viewer).
 * Follower counts here may be that old.
 */
export function createPeopleService(deps: { users: UserRepository; social: SocialRepository; cache: Cache }) {
  const { users, social, cache } = deps;
  return {
    /** Usernames that start with `prefix`; for a viewer, whether they follow each (and which is themselves). */
    async search(prefix: string, viewer?: { userId: string }): Promise<PersonView[]> {
      const found =
        (await cached(cache, `people:search:${prefix}`, () => users.searchByPrefix(prefix, peoplePageSize), 30)) ?? [];
      const following = viewer ? await social.followingIds(viewer.userId) : undefined;
      return found.map(({ id, username, followerCount }) => ({
        username,
        followerCount,
        ...(viewer && { following: following?.has(id) ?? false, self: id === viewer.userId }),
      }));
    },

    /**
     * The most-followed accounts the viewer does not follow yet; where there
     * are too few (a new site, where nobody follows anyone), the recently
     * active ones after them, each marked so.
     */
    async suggested(viewer?: { userId: string; username: string }): Promise<PersonView[]> {
      const top = (await cached(cache, 'people:most-followed', () => users.mostFollowed(100), 60)) ?? [];
      const following = viewer ? await social.followingIds(viewer.userId) : new Set<string>();
      const open = (p: { id: string }) => p.id !== viewer?.userId && !following.has(p.id);
      const picked: PersonView[] = top
        .filter(open)
        .slice(0, peoplePageSize)
        .map(({ username, followerCount }) => ({ username, followerCount }));
      if (picked.length >= peoplePageSize) return picked;
      const recent = (await cached(cache, 'people:recently-active', () => users.recentlyActive(100), 60)) ?? [];
      const shown = new Set(picked.map((p) => p.username));
      for (const p of recent) {
        if (picked.length >= peoplePageSize) break;
        if (!open(p) || shown.has(p.username)) continue;
        picked.push({ username: p.username, followerCount: p.followerCount, recentlyActive: true });
      }
      return picked;
    },
  };
}

export type PeopleService = ReturnType<typeof createPeopleService>;
