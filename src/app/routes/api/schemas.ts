import { z } from 'zod';
import { idPattern } from '../../ids.ts';
import { passwordMaxLength, passwordMinLength, usernamePattern } from '../../users/service.ts';

export const username = z
  .string()
  .regex(usernamePattern, 'username: 3–30 characters of a-z, 0-9 and _')
  .describe('3–30 characters of a-z, 0-9 and _');
export const password = z.string().min(passwordMinLength).max(passwordMaxLength);
export const credentials = z.strictObject({ username, password });

export const photoId = z.string().regex(idPattern, 'not a photo id');
export const usernameParams = z.strictObject({ username });
export const photoParams = z.strictObject({ id: photoId });
export const cursorQuery = z.strictObject({ cursor: z.string().max(200).optional() });

export const errorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), requestId: z.string() }),
});

const size = z.object({ width: z.number().int(), height: z.number().int() }).nullable();
export const photo = z.object({
  id: z.string(),
  owner: z.string(),
  caption: z.string(),
  status: z.enum(['processing', 'ready', 'failed']),
  likeCount: z.number().int(),
  likedByMe: z.boolean(),
  width: z.number().int(),
  height: z.number().int(),
  createdAt: z.string(),
  variants: z.object({ thumb: z.url().nullable(), display: z.url().nullable() }),
  sizes: z.object({ thumb: size, display: size }),
});
export const photoPage = z.object({ items: z.array(photo), nextCursor: z.string().nullable() });
export const user = z.object({
  username: z.string(),
  followerCount: z.number().int(),
  followingCount: z.number().int(),
  photoCount: z.number().int(),
  createdAt: z.string(),
});

/** Error responses every route may give, for the OpenAPI document. */
export const errors = (...codes: (400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429)[]) =>
  Object.fromEntries(codes.map((c) => [c, errorBody]));
