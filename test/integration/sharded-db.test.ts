import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/app/ids.ts';
import { createPhotoRepository } from '../../src/app/photos/repository.ts';
import { createSocialRepository } from '../../src/app/social/repository.ts';
import { createUserRepository } from '../../src/app/users/repository.ts';
import { fence, isFenced } from '../../src/platform/db/fence.ts';
import { migrate } from '../../src/platform/db/migrate.ts';
import { heldShardMap, openShardedDb, type ShardMapSource } from '../../src/platform/db/sharded.ts';
import { createLogger } from '../../src/platform/observability/logger.ts';
import type { Db } from '../../src/ports/db.ts';
import { initialShardMap, type ShardMap, shardOfId, shardOfUsername, shardSchema } from '../../src/ports/shards.ts';
import { createTestDatabase } from '../support/postgres.ts';

/** A map this test changes by hand, as the mover changes etcd's. */
function movableMap(first: ShardMap): ShardMapSource & { set(map: ShardMap): boolean } {
  const held = heldShardMap(first);
  return { ...held, refresh: async () => held.current(), close: async () => {} };
}

/** A name whose logical shard is placed on `cluster` by `map`. */
function nameOn(map: ShardMap, cluster: string, tag: string): string {
  for (let i = 0; ; i++) {
    const name = `${tag}${i}`;
    if (map.clusters[shardOfUsername(name)] === cluster) return name;
  }
}

/** The tables of one logical shard's schema on a database, as a move's target gets them. */
async function migrateOn(url: string, schema: string): Promise<void> {
  const { Kysely, PostgresDialect } = await import('kysely');
  const k = new Kysely<never>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url }) }) });
  try {
    await migrate(k as never, schema);
  } finally {
    await k.destroy();
  }
}

describe('the sharded store: 64 logical shards (schemas) over two PostgreSQL databases', () => {
  const databases: { url: string; drop(): Promise<void> }[] = [];
  /** A third database, added while the store runs (a cluster added to the running topology). */
  let added: { url: string; drop(): Promise<void> } | undefined;
  let db: Db;
  let map: ReturnType<typeof movableMap>;
  const raw = (cluster: 'a' | 'b') => {
    const c = new pg.Client({ connectionString: databases[cluster === 'a' ? 0 : 1]?.url });
    return c;
  };
  const query = async (cluster: 'a' | 'b', text: string, values: unknown[] = []) => {
    const c = raw(cluster);
    await c.connect();
    try {
      return (await c.query(text, values)).rows;
    } finally {
      await c.end();
    }
  };
  const errors: unknown[] = [];

  beforeAll(async () => {
    databases.push(await createTestDatabase(), await createTestDatabase());
    map = movableMap(initialShardMap(['a', 'b']));
    db = await openShardedDb({
      clusters: [
        { name: 'a', url: databases[0]?.url as string },
        { name: 'b', url: databases[1]?.url as string },
      ],
      discover: async (name) => (name === 'c' && added ? { name, url: added.url } : undefined),
      map,
      moveWaitMs: 3000,
      logger: createLogger('silent'),
    });
  }, 120_000);
  afterAll(async () => {
    await db?.close();
    for (const d of [...databases, ...(added ? [added] : [])]) await d.drop();
  });

  const users = () => createUserRepository(db);
  const social = () => createSocialRepository(db, { onSyncError: (err) => errors.push(err) });
  const photos = () => createPhotoRepository(db);
  const signUp = async (name: string) => {
    const id = newId(shardOfUsername(name));
    expect(await users().create({ id, username: name, passwordHash: 'h' })).toBe(true);
    return id;
  };
  const upload = async (ownerId: string, createdAt: Date) => {
    const id = newId(shardOfId(ownerId));
    expect(
      await photos().createWithinCap(
        { id, ownerId, caption: 'c', mimeType: 'image/png', width: 1, height: 1, byteSize: 1, createdAt },
        10,
      ),
    ).toBe('created');
    await photos().markReady(id, {});
    return id;
  };

  it('places each logical shard’s schema on the cluster the map names, with every table', async () => {
    const onA = await query('a', `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'shard\\_%' ORDER BY 1`);
    const onB = await query('b', `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'shard\\_%' ORDER BY 1`);
    expect(onA.map((r) => r.nspname)).toEqual(Array.from({ length: 32 }, (_, k) => shardSchema(k)));
    expect(onB.map((r) => r.nspname)).toEqual(Array.from({ length: 32 }, (_, k) => shardSchema(k + 32)));
    const tables = await query('b', `SELECT tablename FROM pg_tables WHERE schemaname = 'shard_40'`);
    expect(tables.map((r) => r.tablename)).toEqual(
      expect.arrayContaining(['users', 'photos', 'follows', 'followers', 'likes', 'photo_likes', 'edge_outbox']),
    );
  });

  it('a user lands on their name’s shard, and is found by name and by id; a name is unique across shards', async () => {
    const name = nameOn(map.current(), 'b', 'bob');
    const id = await signUp(name);
    const schema = shardSchema(shardOfUsername(name));
    expect(await query('b', `SELECT username FROM ${schema}.users WHERE id = $1`, [id])).toEqual([{ username: name }]);
    expect(await query('a', `SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1`, [schema])).toEqual([
      { n: 0 },
    ]);
    expect((await users().getByUsername(name))?.id).toBe(id);
    expect((await users().get(id))?.username).toBe(name);
    // The same name again goes to the same shard, where its unique index refuses it.
    expect(await users().create({ id: newId(shardOfUsername(name)), username: name, passwordHash: 'h' })).toBe(false);
  });

  it('a follow across clusters: the edge on the follower’s shard, its copy and the count on the followee’s', async () => {
    const fan = await signUp(nameOn(map.current(), 'a', 'fan'));
    const starName = nameOn(map.current(), 'b', 'star');
    const star = await signUp(starName);
    expect(await social().follow(fan, star)).toBe(true);
    expect(await social().follow(fan, star)).toBe(false);
    expect(await social().isFollowing(fan, star)).toBe(true);
    expect(await social().followerIds(star)).toEqual([fan]);
    expect((await users().getProfile(starName))?.followerCount).toBe(1);
    const outbox = async () =>
      (await Promise.all(db.each().map((s) => s.primary.selectFrom('edge_outbox').select('id').execute()))).flat();
    expect(await outbox()).toEqual([]);
    expect(await social().unfollow(fan, star)).toBe(true);
    expect(await social().followerIds(star)).toEqual([]);
    expect((await users().getProfile(starName))?.followerCount).toBe(0);
    expect(errors).toEqual([]);
  });

  it('a crash between the edge and its copy: the outbox keeps it, and settle finishes it (in whatever order)', async () => {
    const fan = await signUp(nameOn(map.current(), 'a', 'crashfan'));
    const star = await signUp(nameOn(map.current(), 'b', 'crashstar'));
    // The follower's transaction committed, and its process died before the copy.
    await db.forKey(fan).transaction(async (trx) => {
      await trx.insertInto('follows').values({ follower_id: fan, followee_id: star }).execute();
      await trx.insertInto('edge_outbox').values({ kind: 'follow', source_id: fan, target_id: star }).execute();
      // An unfollow that also died before its copy: two outbox rows for one pair, settled out of order.
      await trx.insertInto('edge_outbox').values({ kind: 'follow', source_id: fan, target_id: star }).execute();
    });
    expect(await social().followerIds(star)).toEqual([]);
    expect(await social().settle(0)).toBe(2);
    expect(await social().followerIds(star)).toEqual([fan]);
    const count = await db
      .forKey(star)
      .primary.selectFrom('users')
      .select('follower_count')
      .where('id', '=', star)
      .executeTakeFirstOrThrow();
    expect(count.follower_count).toBe(1); // once, though settled twice
    expect(await social().settle(0)).toBe(0);
  });

  it('likes across clusters count on the photo’s shard; a deleted photo’s likes go from the likers’ shards too', async () => {
    const owner = await signUp(nameOn(map.current(), 'b', 'owner'));
    const liker = await signUp(nameOn(map.current(), 'a', 'liker'));
    const photo = await upload(owner, new Date());
    expect(await social().like(liker, photo)).toBe(true);
    expect(await social().like(liker, photo)).toBe(false);
    expect((await photos().get(photo))?.likeCount).toBe(1);
    expect(await photos().likedBy(liker, [photo])).toEqual(new Set([photo]));
    expect(await photos().delete(photo, owner)).toBe(true);
    // The liker's row is on another cluster: the outbox removes it.
    expect(await social().settle(0)).toBe(1);
    expect(await photos().likedBy(liker, [photo])).toEqual(new Set());
  });

  it('the feed, search and suggestions ask every shard and merge, with no query across shards', async () => {
    const viewer = await signUp(nameOn(map.current(), 'a', 'viewer'));
    const authors = [
      await signUp(nameOn(map.current(), 'a', 'zauthora')),
      await signUp(nameOn(map.current(), 'b', 'zauthorb')),
    ];
    for (const a of authors) await social().follow(viewer, a);
    const t0 = Date.now();
    const made: string[] = [];
    for (let i = 0; i < 6; i++) made.push(await upload(authors[i % 2] as string, new Date(t0 + i * 1000)));
    const page = await photos().feed(viewer, { limit: 4 });
    expect(page.map((p) => p.id)).toEqual(made.slice().reverse().slice(0, 5));
    const last = page[3];
    const next = await photos().feed(viewer, {
      limit: 4,
      cursor: last && { createdAt: last.createdAt, id: last.id },
    });
    expect(next.map((p) => p.id)).toEqual(made.slice().reverse().slice(4));
    const found = await users().searchByPrefix('zauthor', 10);
    expect(found.map((p) => p.username)).toEqual([...found.map((p) => p.username)].sort());
    expect(found.length).toBe(2);
    const top = await users().mostFollowed(100);
    expect(top.map((p) => p.id)).toEqual(expect.arrayContaining(authors));
  });

  it('a fenced shard: a write waits while it moves, and lands where the map then says', async () => {
    const name = nameOn(map.current(), 'a', 'mover');
    const id = await signUp(name);
    const shard = shardOfUsername(name);
    const schema = shardSchema(shard);
    // The target gets the schema, and the row as a move's copy would bring it.
    const target = new pg.Client({ connectionString: databases[1]?.url });
    await target.connect();
    try {
      await migrateOn(databases[1]?.url as string, schema);
      await target.query(`INSERT INTO ${schema}.users (id, username, password_hash) VALUES ($1, $2, 'h')`, [id, name]);
    } finally {
      await target.end();
    }
    // The fence on the source: no more writes to this shard there.
    const source = raw('a');
    await source.connect();
    await fence(source, schema);
    expect(await isFenced(source, schema)).toBe(true);
    await source.end();
    const started = Date.now();
    const write = db.forKey(id).primary.updateTable('users').set({ role: 'admin' }).where('id', '=', id).execute();
    await new Promise((r) => setTimeout(r, 300));
    const moved = [...map.current().clusters];
    moved[shard] = 'b';
    map.set({ version: map.current().version + 1, clusters: moved });
    await write;
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(await query('b', `SELECT role FROM ${schema}.users WHERE id = $1`, [id])).toEqual([{ role: 'admin' }]);
    expect(await query('a', `SELECT role FROM ${schema}.users WHERE id = $1`, [id])).toEqual([{ role: 'member' }]);
    // A transaction on it runs where the map says now, too.
    expect(await users().setRole(name, 'member')).toBe(true);
    expect(await query('b', `SELECT role FROM ${schema}.users WHERE id = $1`, [id])).toEqual([{ role: 'member' }]);
  });

  it('a cluster the store did not know at start: found when the map first names it, and its writes go there', async () => {
    added = await createTestDatabase();
    const name = nameOn(map.current(), 'b', 'joiner');
    const shard = shardOfUsername(name);
    await migrateOn(added.url, shardSchema(shard));
    const placed = [...map.current().clusters];
    placed[shard] = 'c';
    map.set({ version: map.current().version + 1, clusters: placed });
    const id = await signUp(name);
    const onC = new pg.Client({ connectionString: added.url });
    await onC.connect();
    try {
      const rows = await onC.query(`SELECT username FROM ${shardSchema(shard)}.users WHERE id = $1`, [id]);
      expect(rows.rows).toEqual([{ username: name }]);
    } finally {
      await onC.end();
    }
    expect(await query('b', `SELECT id FROM ${shardSchema(shard)}.users WHERE id = $1`, [id])).toEqual([]);
    expect((await users().getByUsername(name))?.id).toBe(id);
    // Once known, a request that writes there carries the cluster's position in its read-your-writes token.
    const token = await new Promise<string | undefined>((resolve, reject) => {
      db.consistency.scope(() => {
        users()
          .setRole(name, 'admin')
          .then(() => db.consistency.token())
          .then(resolve, reject);
      });
    });
    expect(token).toMatch(/(^|\+)c:[0-9A-F]+\/[0-9A-F]+/);
    // A name the map places on no known cluster and that discover cannot find: 503, not a crash.
    const lost = [...map.current().clusters];
    const nowhere = nameOn(map.current(), 'a', 'nowhere');
    lost[shardOfUsername(nowhere)] = 'pg-z';
    map.set({ version: map.current().version + 1, clusters: lost });
    await expect(users().getByUsername(nowhere)).rejects.toMatchObject({ name: 'StoreUnavailableError' });
    const back = [...map.current().clusters];
    back[shardOfUsername(nowhere)] = 'a';
    map.set({ version: map.current().version + 1, clusters: back });
  });
});
