import type { Cache } from '../../ports/cache.ts';
import type { BusinessMetrics } from '../../ports/metrics.ts';
import { badRequest, notFound } from '../errors.ts';
import { likedKey } from '../photos/liked.ts';
import type { PhotoRepository } from '../photos/repository.ts';
import { photoCacheKey } from '../photos/service.ts';
import type { UserRepository } from '../users/repository.ts';
import { profileCacheKey } from '../users/service.ts';
import type { SocialRepository } from './repository.ts';

export function createSocialService(deps: {
  social: SocialRepository;
  users: UserRepository;
  photos: PhotoRepository;
  cache: Cache;
  metrics: BusinessMetrics;
}) {
  const { social, users, photos, cache, metrics } = deps;

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
      await social.follow(followerId, followee.id);
      await cache.delete(profileCacheKey(followee.username), profileCacheKey(follower.username));
    },
    async unfollow(followerId: string, username: string): Promise<void> {
      const { followee, follower } = await target(followerId, username);
      await social.unfollow(followerId, followee.id);
      await cache.delete(profileCacheKey(followee.username), profileCacheKey(follower.username));
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
