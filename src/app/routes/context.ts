import type { FastifyRequest } from 'fastify';
import type { ActivityService } from '../activity/service.ts';
import { unauthorized } from '../errors.ts';
import type { FeedService } from '../feed/service.ts';
import type { PeopleService } from '../people/service.ts';
import type { PhotoService } from '../photos/service.ts';
import type { SocialService } from '../social/service.ts';
import type { UserService } from '../users/service.ts';

/** The use cases the routes call. */
export interface Services {
  users: UserService;
  photos: PhotoService;
  social: SocialService;
  feed: FeedService;
  activity: ActivityService;
  people: PeopleService;
}

/** Settings the routes need to speak HTTP. */
export interface RouteSettings {
  uploadMaxBytes: number;
  /** Absolute base for links in API responses; the request's own origin when unset. */
  publicUrl?: string;
  /**
   * Where image URLs point, with a CDN edge: `base()` is the edge's while it
   * answers and the origin's while it does not; `origin` is where a page's
   * images fall back to in the browser; `hosts` every base they may have.
   */
  media?: { base(): string | undefined; origin: string | undefined; hosts: string[] };
}

/** The logged-in user of a request. */
export interface Viewer {
  userId: string;
  username: string;
  sessionId: string;
  via: 'cookie' | 'bearer';
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route takes multipart/form-data (an upload); the JSON API refuses it everywhere else. */
    multipart?: boolean;
  }
  interface FastifyRequest {
    viewer: Viewer | null;
    /** Throws 403 unless `token` is the CSRF token this browser's forms carry for its session. */
    verifyCsrf(token: string | undefined): void;
    /** The write's Idempotency-Key (header, or the form's field), once the server has claimed it. */
    idempotencyKey: string | null;
    /**
     * For a route that reads its own body (multipart): claims the key (the
     * header, or the form's field) with the body's fields and file, or answers
     * a repeat (the first answer, 409 or 422) and returns true: the handler
     * then stops. Without a key it returns false.
     */
    claimIdempotency(reply: FastifyReply, fields: Record<string, string>, file?: Buffer): Promise<boolean>;
  }
  interface FastifyReply {
    startSession(session: { id: string; expiresAt: Date; data?: Record<string, string> }): void;
    endSession(): void;
    /** The CSRF token the HTML forms of this response carry. */
    csrfToken(): string;
  }
}

export function requireViewer(request: FastifyRequest): Viewer {
  if (!request.viewer) throw unauthorized();
  return request.viewer;
}

/** The base of image URLs: the edge's (or the origin's while the edge is down), else the links' own. */
export function mediaBase(request: FastifyRequest, settings: RouteSettings): string {
  return settings.media?.base() ?? baseUrl(request, settings);
}

/** The origin to build absolute links with. */
export function baseUrl(request: FastifyRequest, settings: RouteSettings): string {
  return settings.publicUrl?.replace(/\/$/, '') ?? `${request.protocol}://${request.host}`;
}
