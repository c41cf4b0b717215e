import type { Cache } from '../../ports/cache.ts';
import type { BusinessMetrics } from '../../ports/metrics.ts';
import { badRequest, notFound } from '../errors.ts';
import type { Timelines } from '../feed/timelines.ts';
import { likedKey } from '../photos/liked.ts';
import type { PhotoRepository } from '../photos/repository.ts';
import { photoCacheKey } from '../photos/views.ts';
import type { UserRepository } from '../users/repository.ts';
import { profileCacheKey } from '../users/service.ts';
import type { SocialRepository } from './repository.ts';

export function createSocialService(deps: {
  social: SocialRepository;
  users: UserRepository;
  photos: PhotoRepository;
  cache: Cache;
  metrics: BusinessMetrics;
  /** Precomputed feeds, when this site keeps them. */
  timelines?: Timelines;
}) {
  const { social, users, photos, cache, metrics, timelines } = deps;

  const target = async (followerId: string, username: string) => {
    const [followee, follower] = await Promise.all([users.getByUsername(username), users.get(followerId)]);
    if (!followee || !follower) throw notFound('user');
    if (followee.id === followerId) throw badRequest('you cannot follow yourself', 'SELF_FOLLOW');
    return { followee, follower };
  };

  const likeable = async (photoId: string) => {
    const photo = await photos.get(photoId, true);
    if (photo?.status !== 'ready') throw notFound('photo');
    return photo;
  };

  return {
    async follow(followerId: string, username: string): Promise<void> {
      const { followee, follower } = await target(followerId, username);
      const added = await social.follow(followerId, followee.id);
      await cache.delete(profileCacheKey(followee.username), profileCacheKey(follower.username));
      if (added) await timelines?.followed(followerId, followee.id);
    },
    async unfollow(followerId: string, username: string): Promise<void> {
      const { followee, follower } = await target(followerId, username);
      const removed = await social.unfollow(followerId, followee.id);
      await cache.delete(profileCacheKey(followee.username), profileCacheKey(follower.username));
      if (removed) await timelines?.unfollowed(followerId, followee.id);
    },
    isFollowing: (followerId: string, followeeId: string) => social.isFollowing(followerId, followeeId),
    async like(userId: string, photoId: string): Promise<void> {
      await likeable(photoId);
      const liked = await social.like(userId, photoId);
      // Deleted between the check and the insert: the same answer as deleted before it.
      if (liked === 'gone') throw notFound('photo');
      if (liked) metrics.like();
      await cache.delete(photoCacheKey(photoId), likedKey(userId, photoId));
    },
    async unlike(userId: string, photoId: string): Promise<void> {
      await likeable(photoId);
      await social.unlike(userId, photoId);
      await cache.delete(photoCacheKey(photoId), likedKey(userId, photoId));
    },
  };
}

export type SocialService = ReturnType<typeof createSocialService>;
