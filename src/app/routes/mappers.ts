import type { FeedItem } from '../feed/service.ts';
import type { PhotoView } from '../photos/views.ts';
import type { CachedProfile } from '../users/service.ts';

export const mediaPath = (photoId: string, variant: string) => `/media/photos/${photoId}/${variant}.webp`;

export interface PhotoResponse {
  id: string;
  owner: string;
  caption: string;
  status: 'processing' | 'ready' | 'failed';
  likeCount: number;
  likedByMe: boolean;
  width: number;
  height: number;
  createdAt: string;
  variants: { thumb: string | null; display: string | null };
  sizes: {
    thumb: { width: number; height: number } | null;
    display: { width: number; height: number } | null;
  };
}

export function mapPhoto(photo: PhotoView | FeedItem, base: string, likedByMe = false): PhotoResponse {
  const variant = (name: 'thumb' | 'display') => {
    const v = photo.status === 'ready' ? photo.variants[name] : undefined;
    return v ? { url: `${base}${mediaPath(photo.id, name)}`, width: v.width, height: v.height } : null;
  };
  const thumb = variant('thumb');
  const display = variant('display');
  return {
    id: photo.id,
    owner: photo.owner,
    caption: photo.caption,
    status: photo.status,
    likeCount: photo.likeCount,
    likedByMe: 'likedByMe' in photo ? photo.likedByMe : likedByMe,
    width: photo.width,
    height: photo.height,
    createdAt: photo.createdAt,
    variants: { thumb: thumb?.url ?? null, display: display?.url ?? null },
    sizes: {
      thumb: thumb && { width: thumb.width, height: thumb.height },
      display: display && { width: display.width, height: display.height },
    },
  };
}

export function mapUser(profile: CachedProfile) {
  return {
    username: profile.username,
    followerCount: profile.followerCount,
    followingCount: profile.followingCount,
    photoCount: profile.photoCount,
    createdAt: profile.createdAt,
  };
}
