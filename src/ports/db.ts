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
  /** The copy of `follows` on the followee's shard. */
  followers: {
    followee_id: string;
    follower_id: string;
    created_at: Generated<Date>;
  };
  /** The copy of `likes` on the photo's shard. */
  photo_likes: {
    photo_id: string;
    user_id: string;
    created_at: Generated<Date>;
  };
  /** Edges whose copy on the other end's shard may not match yet. */
  edge_outbox: {
    id: Generated<string>;
    kind: 'follow' | 'like';
    source_id: string;
    target_id: string;
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

/** How long a read that prefers the primary waits for it before it asks a replica too (ms). */
export const primaryPatienceMs = 500;

/**
 * A read that prefers the primary (it has every write, the newest too): the
 * primary's answer, unless it fails as unavailable (then the replica's), or
 * has not come within `afterMs` (it waits for a failover to end, or in a
 * second data center the primary one is lost). Late, the first answer of the
 * two that `usable` accepts (a replica without the row waits for the
 * primary), else the primary's; when the primary fails too, the replica's.
 * `from` says whose it is: a replica's may lag, so a cache must not keep it.
 */
export async function preferPrimary<T>(
  primary: () => Promise<T>,
  replica: () => Promise<T>,
  o: { afterMs?: number; usable?: (value: T) => boolean; unavailable?: (err: unknown) => boolean } = {},
): Promise<{ value: T; from: 'primary' | 'replica' }> {
  const unavailable = (err: unknown) => err instanceof StoreUnavailableError || (o.unavailable?.(err) ?? false);
  const usable = o.usable ?? (() => true);
  const fromPrimary = primary().then((value) => ({ value, from: 'primary' as const }));
  const fromReplica = () => replica().then((value) => ({ value, from: 'replica' as const }));
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), o.afterMs ?? primaryPatienceMs);
  });
  try {
    const winner = await Promise.race([fromPrimary, late]);
    if (winner !== 'late') return winner;
  } catch (err) {
    if (!unavailable(err)) throw err;
    return fromReplica();
  } finally {
    clearTimeout(timer);
  }
  const asked = fromReplica();
  const found = asked.then((r) => (usable(r.value) ? r : Promise.reject(new Error('not usable on the replica'))));
  return Promise.any([fromPrimary, found]).catch(() => asked);
}

/** One database's handles: `primary` takes writes, `reader` answers reads (a replica in clustered topologies). */
export interface ShardDb {
  readonly primary: QueryBuilder;
  reader(): QueryBuilder;
  /** Runs `fn` in one transaction on the primary. */
  transaction<T>(fn: (trx: QueryBuilder) => Promise<T>): Promise<T>;
}

/**
 * The relational store, and its router by shard key. A user's rows (their
 * account, photos, likes and follows given, and the reverse edges of what
 * others did to them) live on the user's logical shard; `forKey` takes a
 * user's or a photo's id (the id carries its shard, see ports/shards.ts),
 * `forUsername` a name, and `each` gives every database once, for the reads
 * that span all users (search, suggestions, KPIs), which fan out with a
 * bound. Unsharded topologies keep one database behind all 64 logical
 * shards: the same app code runs at every stage. The store's own handles
 * (`primary`, `reader`) are for what is not a user's: sessions, rate limits
 * and idempotency keys when they live in the database.
 */
export interface Db extends ShardDb {
  forKey(id: string): ShardDb;
  forUsername(username: string): ShardDb;
  each(): ShardDb[];
  readonly consistency: ReadConsistency;
  /** Resolves when the store can answer reads (a replica is enough). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Runs `read` on every database of `db` (at most `concurrency` at once) and returns the results in `each()` order. */
export async function fanOut<T>(db: Db, read: (shard: ShardDb) => Promise<T>, concurrency = 8): Promise<T[]> {
  const shards = db.each();
  const out = new Array<T>(shards.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < shards.length; i = next++) out[i] = await read(shards[i] as ShardDb);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, shards.length) }, worker));
  return out;
}

/** `ids` grouped by the database that holds them (one group when unsharded), in first-seen order. */
export function byShard(db: Db, ids: Iterable<string>): { shard: ShardDb; ids: string[] }[] {
  const groups = new Map<ShardDb, string[]>();
  for (const id of ids) {
    const shard = db.forKey(id);
    const list = groups.get(shard);
    if (list) list.push(id);
    else groups.set(shard, [id]);
  }
  return [...groups].map(([shard, list]) => ({ shard, ids: list }));
}
