import { type ExpressionBuilder, sql } from 'kysely';
import type { Database, Db, PhotoVariantRecord } from '../../ports/db.ts';
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

export function createPhotoRepository(db: Db) {
  const base = (q = db.reader()) =>
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
      return db.transaction(async (trx) => {
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
      const row = await base(fromPrimary ? db.primary : db.reader())
        .where('p.id', '=', id)
        .executeTakeFirst();
      return row && toRow(row as SelectedPhoto);
    },

    /** processing → ready; false when the photo is gone or no longer processing. */
    async markReady(id: string, variants: Record<string, PhotoVariantRecord>): Promise<boolean> {
      const result = await db.primary
        .updateTable('photos')
        .set({ status: 'ready', variants: JSON.stringify(variants) as never, updated_at: new Date() })
        .where('id', '=', id)
        .where('status', '=', 'processing')
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    async markFailed(id: string): Promise<void> {
      await db.primary
        .updateTable('photos')
        .set({ status: 'failed', updated_at: new Date() })
        .where('id', '=', id)
        .where('status', '=', 'processing')
        .execute();
    },

    /** Deletes the photo (and its likes) when `ownerId` owns it. */
    async delete(id: string, ownerId: string): Promise<boolean> {
      const result = await db.primary
        .deleteFrom('photos')
        .where('id', '=', id)
        .where('owner_id', '=', ownerId)
        .executeTakeFirst();
      return Number(result.numDeletedRows) === 1;
    },

    /** A user's photos, newest first. Others see only ready ones. */
    async listByOwner(ownerId: string, opts: { cursor?: Cursor; limit: number; includeUnready: boolean }) {
      let q = base().where('p.owner_id', '=', ownerId);
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
     * plus their own (their own also while processing), newest first.
     */
    async feed(userId: string, opts: { cursor?: Cursor; limit: number }) {
      const rows = await base()
        // One array of owners (the followed and the viewer) lets the planner
        // use the (owner_id, created_at) index instead of an OR of two scans.
        .where(
          sql<boolean>`p.owner_id = ANY(ARRAY(SELECT followee_id FROM follows WHERE follower_id = ${userId}) || ${userId}::text)`,
        )
        .where((eb) => eb.or([eb('p.status', '=', 'ready'), eb('p.owner_id', '=', userId)]))
        .where('p.status', '<>', 'failed')
        .where((eb) => before(opts.cursor)(eb as Eb))
        .orderBy('p.created_at', 'desc')
        .orderBy('p.id', 'desc')
        .limit(opts.limit + 1)
        .execute();
      return (rows as SelectedPhoto[]).map(toRow);
    },

    /**
     * A home timeline's entries, from the primary (a rebuild must not miss a
     * photo a lagging replica lacks): the photos of the people `userId`
     * follows and their own, newest first. Those still processing are in it
     * too (the feed shows only ready ones, and a photo's own fan-out goes to
     * timelines that exist, so a rebuild must not leave out one that becomes
     * ready while it runs).
     */
    async homeEntries(userId: string, limit: number): Promise<{ id: string; at: number }[]> {
      const rows = await db.primary
        .selectFrom('photos as p')
        .select(['p.id', 'p.created_at'])
        .where(
          sql<boolean>`p.owner_id = ANY(ARRAY(SELECT followee_id FROM follows WHERE follower_id = ${userId}) || ${userId}::text)`,
        )
        .where('p.status', '<>', 'failed')
        .orderBy('p.created_at', 'desc')
        .orderBy('p.id', 'desc')
        .limit(limit)
        .execute();
      return rows.map((r) => ({ id: r.id, at: new Date(r.created_at).getTime() }));
    },

    /**
     * An author's timeline entries: all their photos, newest first, processing
     * ones included (as homeEntries) and failed ones too (their owner sees
     * them on their profile; the feeds show only ready ones).
     */
    async authorEntries(ownerId: string, limit: number): Promise<{ id: string; at: number }[]> {
      const rows = await db.primary
        .selectFrom('photos as p')
        .select(['p.id', 'p.created_at'])
        .where('p.owner_id', '=', ownerId)
        .orderBy('p.created_at', 'desc')
        .orderBy('p.id', 'desc')
        .limit(limit)
        .execute();
      return rows.map((r) => ({ id: r.id, at: new Date(r.created_at).getTime() }));
    },

    /** Photos by id from the primary (a feed page's cache misses), in no order; missing ids are left out. */
    async getMany(ids: string[]): Promise<PhotoRow[]> {
      if (ids.length === 0) return [];
      const rows = await base(db.primary).where('p.id', 'in', ids).execute();
      return (rows as SelectedPhoto[]).map(toRow);
    },

    /** Photos still processing (a crash left them, or their job waits), oldest first. */
    /** Photos processing since before `olderThan` (default: all), oldest first. */
    async processing(o: { olderThan?: Date; limit?: number } = {}): Promise<{ id: string; ownerId: string }[]> {
      let q = db.primary.selectFrom('photos').select(['id', 'owner_id']).where('status', '=', 'processing');
      if (o.olderThan) q = q.where('created_at', '<', o.olderThan);
      const rows = await q
        .orderBy('created_at')
        .limit(o.limit ?? 10_000)
        .execute();
      return rows.map((r) => ({ id: r.id, ownerId: r.owner_id }));
    },

    /** How many of a user's photos are processing. */
    async countProcessing(ownerId: string): Promise<number> {
      const row = await db.primary
        .selectFrom('photos')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('owner_id', '=', ownerId)
        .where('status', '=', 'processing')
        .executeTakeFirst();
      return Number(row?.n ?? 0);
    },

    async likedBy(userId: string, photoIds: string[]): Promise<Set<string>> {
      if (photoIds.length === 0) return new Set();
      const rows = await db
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
