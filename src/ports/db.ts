import type { Generated, Kysely } from 'kysely';

/** The tables of the relational store, as the query layer sees them. */
export interface Database {
  users: {
    id: string;
    username: string;
    password_hash: string;
    role: Generated<'member' | 'admin'>;
    follower_count: Generated<number>;
    created_at: Generated<Date>;
  };
  photos: {
    id: string;
    owner_id: string;
    caption: string;
    status: 'processing' | 'ready' | 'failed';
    mime_type: string;
    width: number;
    height: number;
    byte_size: number;
    variants: Generated<Record<string, PhotoVariantRecord>>;
    like_count: Generated<number>;
    /** The upload's Idempotency-Key, when it sent one. */
    request_key: Generated<string | null>;
    created_at: Generated<Date>;
    updated_at: Generated<Date>;
  };
  follows: {
    follower_id: string;
    followee_id: string;
    created_at: Generated<Date>;
  };
  likes: {
    user_id: string;
    photo_id: string;
    created_at: Generated<Date>;
  };
  daily_active_users: {
    day: string;
    user_id: string;
  };
  idempotency_keys: {
    key: string;
    fingerprint: string;
    response: unknown;
    locked_until: Date;
    expires_at: Date;
  };
  rate_limits: {
    key: string;
    count: number;
    window_ends: Date;
    last_hit: Date;
  };
  sessions: {
    id_hash: string;
    user_id: string;
    data: Generated<Record<string, string>>;
    created_at: Generated<Date>;
    expires_at: Date;
  };
}

export interface PhotoVariantRecord {
  key: string;
  width: number;
  height: number;
  bytes: number;
}

export type QueryBuilder = Kysely<Database>;

/**
 * Read-your-writes across replicas. A request begins with the token its
 * session carried from earlier writes; reads then avoid any replica that has
 * not replayed that far. After the request, `token()` gives the token to keep
 * (new when the request wrote, else the one it began with).
 */
export interface ReadConsistency {
  /** Runs `fn` (the rest of a request) in a fresh scope. */
  scope(fn: () => void): void;
  begin(token: string | undefined): void;
  token(): Promise<string | undefined>;
}

/** The store cannot answer now (no primary during a failover, connection lost): retry later. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/**
 * The relational store. `primary` takes writes; `reader` answers reads and may
 * be a replica in clustered topologies. Both speak the same SQL.
 */
export interface Db {
  readonly primary: QueryBuilder;
  reader(): QueryBuilder;
  /** Runs `fn` in one transaction on the primary. */
  transaction<T>(fn: (trx: QueryBuilder) => Promise<T>): Promise<T>;
  readonly consistency: ReadConsistency;
  /** Resolves when the store can answer reads (a replica is enough). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
