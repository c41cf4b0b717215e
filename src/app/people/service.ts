import { type Cache, cached } from '../../ports/cache.ts';
import type { SocialRepository } from '../social/repository.ts';
import type { PersonRow, UserRepository } from '../users/repository.ts';

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
    async search(prefix: string): Promise<PersonRow[]> {
      return (
        (await cached(cache, `people:search:${prefix}`, () => users.searchByPrefix(prefix, peoplePageSize), 30)) ?? []
      );
    },

    async suggested(viewer?: { userId: string; username: string }): Promise<PersonRow[]> {
      const top = (await cached(cache, 'people:most-followed', () => users.mostFollowed(100), 60)) ?? [];
      const following = viewer ? await social.followingIds(viewer.userId) : new Set<string>();
      return top
        .filter((p) => p.id !== viewer?.userId && !following.has(p.id))
        .slice(0, peoplePageSize)
        .map(({ username, followerCount }) => ({ username, followerCount }));
    },
  };
}

export type PeopleService = ReturnType<typeof createPeopleService>;
