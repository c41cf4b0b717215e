import type { ExpressionBuilder } from 'kysely';
import { byShard, type Database, type Db, fanOut, type PhotoVariantRecord, type QueryBuilder } from '../../ports/db.ts';
import type { Cursor } from '../cursor.ts';

export type PhotoStatus = 'processing' | 'ready' | 'failed';

export interface PhotoRow {
  id: string;
  ownerId: string;
  owner: string;
  caption: string;
  status: PhotoStatus;
  width: number;
  height: number;
  variants: Record<string, PhotoVariantRecord>;
  likeCount: number;
  createdAt: Date;
}

type Eb = ExpressionBuilder<Database & { p: Database['photos']; u: Database['users'] }, 'p' | 'u'>;

/** The columns of a photo as the app shows it: owner's name and like count included. */
const photoColumns = (_eb: Eb) =>
  [
    'p.id',
    'p.owner_id',
    'u.username',
    'p.caption',
    'p.status',
    'p.width',
    'p.height',
    'p.variants',
    'p.like_count',
    'p.created_at',
  ] as const;

interface SelectedPhoto {
  id: string;
  owner_id: string;
  username: string;
  caption: string;
  status: PhotoStatus;
  width: number;
  height: number;
  variants: Record<string, PhotoVariantRecord>;
  like_count: number;
  created_at: Date;
}

const toRow = (r: SelectedPhoto): PhotoRow => ({
  id: r.id,
  ownerId: r.owner_id,
  owner: r.username,
  caption: r.caption,
  status: r.status,
  width: r.width,
  height: r.height,
  variants: r.variants ?? {},
  likeCount: Number(r.like_count),
  createdAt: new Date(r.created_at),
});

/** The ids `userId` follows, from `q` (the follower's shard). */
const followees = async (q: QueryBuilder, userId: string) =>
  (await q.selectFrom('follows').select('followee_id').where('follower_id', '=', userId).execute()).map(
    (r) => r.followee_id,
  );

/**
 * Pages from several shards merged newest first by (time, id), as the keyset
 * cursors walk (ids are ASCII, compared bytewise as in the C collation); a
 * lone page stays in the database's order.
 */
const newestFirst = <T extends { id: string }>(pages: T[][], at: (x: T) => number): T[] =>
  pages.length === 1
    ? (pages[0] ?? [])
    : pages.flat().sort((a, b) => at(b) - at(a) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));

export function createPhotoRepository(db: Db) {
  const base = (q: QueryBuilder) =>
    q
      .selectFrom('photos as p')
      .innerJoin('users as u', 'u.id', 'p.owner_id')
      .select((eb) => photoColumns(eb as Eb));

  const before = (cursor: Cursor | undefined) => (eb: Eb) =>
    cursor ? eb(eb.refTuple('p.created_at', 'p.id'), '<', eb.tuple(cursor.createdAt, cursor.id)) : eb.lit(true);

  return {
    /**
     * Inserts the photo as `processing` unless its owner already has
     * `maxProcessing` photos processing ('over-cap'), or already has a photo
     * uploaded with the same request key (that photo: a retried upload). The
     * owner's row is locked for the count, the lookup and the insert (SELECT …
     * FOR UPDATE), so concurrent uploads of one user are counted one after
     * another: the cap holds under a burst, and one key makes one photo.
     */
    async createWithinCap(
      photo: {
        id: string;
        ownerId: string;
        caption: string;
        mimeType: string;
        width: number;
        height: number;
        byteSize: number;
        // Set here, at millisecond precision, so keyset cursors compare exactly.
        createdAt: Date;
        /** The upload's Idempotency-Key. */
        requestKey?: string;
      },
      maxProcessing: number,
    ): Promise<'created' | 'over-cap' | { id: string; status: PhotoRow['status'] }> {
      return db.forKey(photo.ownerId).transaction(async (trx) => {
        await trx.selectFrom('users').select('id').where('id', '=', photo.ownerId).forUpdate().execute();
        if (photo.requestKey !== undefined) {
          const earlier = await trx
            .selectFrom('photos')
            .select(['id', 'status'])
            .where('owner_id', '=', photo.ownerId)
            .where('request_key', '=', photo.requestKey)
            .executeTakeFirst();
          if (earlier) return earlier;
        }
        const row = await trx
          .selectFrom('photos')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .where('owner_id', '=', photo.ownerId)
          .where('status', '=', 'processing')
          .executeTakeFirst();
        if (Number(row?.n ?? 0) >= maxProcessing) return 'over-cap';
        await trx
          .insertInto('photos')
          .values({
            id: photo.id,
            owner_id: photo.ownerId,
            caption: photo.caption,
            status: 'processing',
            mime_type: photo.mimeType,
            width: photo.width,
            height: photo.height,
            byte_size: photo.byteSize,
            created_at: photo.createdAt,
            updated_at: photo.createdAt,
            request_key: photo.requestKey ?? null,
          })
          .execute();
        return 'created';
      });
    },

    async get(id: string, fromPrimary = false): Promise<PhotoRow | undefined> {
      const shard = db.forKey(id);
      const row = await base(fromPrimary ? shard.primary : shard.reader())
        .where('p.id', '=', id)
        .executeTakeFirst();
      return row && toRow(row as SelectedPhoto);
    },

    /** processing → ready; false when the photo is gone or no longer processing. */
    async markReady(id: string, variants: Record<string, PhotoVariantRecord>): Promise<boolean> {
      const result = await db
        .forKey(id)
        .primary.updateTable('photos')
        .set({ status: 'ready', variants: JSON.stringify(variants) as never, updated_at: new Date() })
        .where('id', '=', id)
        .where('status', '=', 'processing')
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    async markFailed(id: string): Promise<void> {
      await db
        .forKey(id)
        .primary.updateTable('photos')
        .set({ status: 'failed', updated_at: new Date() })
        .where('id', '=', id)
        .where('status', '=', 'processing')
        .execute();
    },

    /**
     * Deletes the photo when `ownerId` owns it, with its likes: those of users
     * on its shard at once; those of users on other shards through the edge
     * outbox (the social repository's `settle` removes them there, as it finds
     * the photo gone).
     */
    async delete(id: string, ownerId: string): Promise<boolean> {
      const shard = db.forKey(id);
      return shard.transaction(async (trx) => {
        const likers = await trx.selectFrom('photo_likes').select('user_id').where('photo_id', '=', id).execute();
        const result = await trx
          .deleteFrom('photos')
          .where('id', '=', id)
          .where('owner_id', '=', ownerId)
          .executeTakeFirst();
        if (Number(result.numDeletedRows) !== 1) return false;
        await trx.deleteFrom('likes').where('photo_id', '=', id).execute();
        const elsewhere = likers.filter((l) => db.forKey(l.user_id) !== shard);
        if (elsewhere.length > 0) {
          await trx
            .insertInto('edge_outbox')
            .values(elsewhere.map((l) => ({ kind: 'like' as const, source_id: l.user_id, target_id: id })))
            .execute();
        }
        return true;
      });
    },

    /** A user's photos, newest first. Others see only ready ones. */
    async listByOwner(ownerId: string, opts: { cursor?: Cursor; limit: number; includeUnready: boolean }) {
      let q = base(db.forKey(ownerId).reader()).where('p.owner_id', '=', ownerId);
      if (!opts.includeUnready) q = q.where('p.status', '=', 'ready');
      const rows = await q
        .where((eb) => before(opts.cursor)(eb as Eb))
        .orderBy('p.created_at', 'desc')
        .orderBy('p.id', 'desc')
        .limit(opts.limit + 1)
        .execute();
      return (rows as SelectedPhoto[]).map(toRow);
    },

    /**
     * The home feed, fanned out on read: photos of the people `userId` follows
     * plus their own (their own also while processing), newest first. The
     * followed come from the viewer's shard; their photos from each author's
     * shard (one query per shard, merged), so no query joins across shards.
     */
    async feed(userId: string, opts: { cursor?: Cursor; limit: number }) {
      const owners = [...(await followees(db.forKey(userId).reader(), userId)), userId];
      const pages = await Promise.all(
        byShard(db, owners).map(({ shard, ids }) =>
          base(shard.reader())
            .where('p.owner_id', 'in', ids)
            .where((eb) => eb.or([eb('p.status', '=', 'ready'), eb('p.owner_id', '=', userId)]))
            .where('p.status', '<>', 'failed')
            .where((eb) => before(opts.cursor)(eb as Eb))
            .orderBy('p.created_at', 'desc')
            .orderBy('p.id', 'desc')
            .limit(opts.limit + 1)
            .execute(),
        ),
      );
      return newestFirst(
        pages.map((page) => (page as SelectedPhoto[]).map(toRow)),
        (p) => p.createdAt.getTime(),
      ).slice(0, opts.limit + 1);
    },

    /**
     * A home timeline's entries, from the primaries (a rebuild must not miss a
     * photo a lagging replica lacks): the photos of the people `userId`
     * follows and their own, newest first, asked of each author's shard.
     * Those still processing are in it too (the feed shows only ready ones,
     * and a photo's own fan-out goes to timelines that exist, so a rebuild
     * must not leave out one that becomes ready while it runs).
     */
    async homeEntries(userId: string, limit: number): Promise<{ id: string; at: number }[]> {
      const owners = [...(await followees(db.forKey(userId).primary, userId)), userId];
      const pages = await Promise.all(
        byShard(db, owners).map(({ shard, ids }) =>
          shard.primary
            .selectFrom('photos as p')
            .select(['p.id', 'p.created_at'])
            .where('p.owner_id', 'in', ids)
            .where('p.status', '<>', 'failed')
            .orderBy('p.created_at', 'desc')
            .orderBy('p.id', 'desc')
            .limit(limit)
            .execute(),
        ),
      );
      return newestFirst(
        pages.map((page) => page.map((r) => ({ id: r.id, at: new Date(r.created_at).getTime() }))),
        (e) => e.at,
      ).slice(0, limit);
    },

    /**
     * An author's timeline entries: all their photos, newest first, processing
     * ones included (as homeEntries) and failed ones too (their owner sees
     * them on their profile; the feeds show only ready ones).
     */
    async authorEntries(ownerId: string, limit: number): Promise<{ id: string; at: number }[]> {
      const rows = await db
        .forKey(ownerId)
        .primary.selectFrom('photos as p')
        .select(['p.id', 'p.created_at'])
        .where('p.owner_id', '=', ownerId)
        .orderBy('p.created_at', 'desc')
        .orderBy('p.id', 'desc')
        .limit(limit)
        .execute();
      return rows.map((r) => ({ id: r.id, at: new Date(r.created_at).getTime() }));
    },

    /** Photos by id from the primary (a feed page's cache misses) or a replica, in no order; missing ids are left out. */
    async getMany(ids: string[], fromPrimary = true): Promise<PhotoRow[]> {
      if (ids.length === 0) return [];
      const rows = await Promise.all(
        byShard(db, ids).map(({ shard, ids: here }) =>
          base(fromPrimary ? shard.primary : shard.reader())
            .where('p.id', 'in', here)
            .execute(),
        ),
      );
      return (rows.flat() as SelectedPhoto[]).map(toRow);
    },

    /** Photos processing since before `olderThan` (default: all), oldest first, from every shard. */
    async processing(o: { olderThan?: Date; limit?: number } = {}): Promise<{ id: string; ownerId: string }[]> {
      const limit = o.limit ?? 10_000;
      const perShard = await fanOut(db, (shard) => {
        let q = shard.primary
          .selectFrom('photos')
          .select(['id', 'owner_id', 'created_at'])
          .where('status', '=', 'processing');
        if (o.olderThan) q = q.where('created_at', '<', o.olderThan);
        return q.orderBy('created_at').limit(limit).execute();
      });
      return perShard
        .flat()
        .sort((a, b) => new Date(a.created_at).getTime() - new Date(b.created_at).getTime())
        .slice(0, limit)
        .map((r) => ({ id: r.id, ownerId: r.owner_id }));
    },

    /** How many of a user's photos are processing. */
    async countProcessing(ownerId: string): Promise<number> {
      const row = await db
        .forKey(ownerId)
        .primary.selectFrom('photos')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('owner_id', '=', ownerId)
        .where('status', '=', 'processing')
        .executeTakeFirst();
      return Number(row?.n ?? 0);
    },

    async likedBy(userId: string, photoIds: string[]): Promise<Set<string>> {
      if (photoIds.length === 0) return new Set();
      const rows = await db
        .forKey(userId)
        .reader()
        .selectFrom('likes')
        .select('photo_id')
        .where('user_id', '=', userId)
        .where('photo_id', 'in', photoIds)
        .execute();
      return new Set(rows.map((r) => r.photo_id));
    },
  };
}

export type PhotoRepository = ReturnType<typeof createPhotoRepository>;
