/** A logged-in session, as the app sees it. */
export interface Session {
  id: string;
  userId: string;
  data: Record<string, string>;
  expiresAt: Date;
}

/**
 * Where sessions live. Ids are secrets: stores should keep only a digest.
 * Expired sessions are never returned.
 */
export interface SessionStore {
  create(userId: string, data?: Record<string, string>): Promise<Session>;
  get(id: string): Promise<Session | null>;
  update(id: string, data: Record<string, string>): Promise<void>;
  delete(id: string): Promise<void>;
  close(): Promise<void>;
}
