import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/platform/db/migrate.ts';
import type { Db } from '../../src/ports/db.ts';

export interface DbContractOptions {
  name: string;
  /** A migrated, empty database of its own. */
  create(): Promise<{ db: Db; cleanup(): Promise<void> }>;
}

/** What every Db adapter must do: PGlite now, PostgreSQL (and its replicas) in the database stage. */
export function runDbContract(opts: DbContractOptions): void {
  describe(`Db contract: ${opts.name}`, () => {
    let db: Db;
    let cleanup: () => Promise<void>;
    const uid = () => `u${Math.random().toString(36).slice(2, 14)}`;
    const addUser = async (id = uid()) => {
      await db.primary.insertInto('users').values({ id, username: id, password_hash: 'h' }).execute();
      return id;
    };
    beforeAll(async () => {
      ({ db, cleanup } = await opts.create());
    });
    afterAll(async () => cleanup());

    it('has every table after migrating, and migrating again changes nothing', async () => {
      expect(await migrate(db.primary)).toEqual([]);
      const tables = await sql<{
        tablename: string;
      }>`SELECT tablename FROM pg_tables WHERE schemaname = 'public'`.execute(db.primary);
      expect(tables.rows.map((r) => r.tablename)).toEqual(
        expect.arrayContaining(['users', 'photos', 'follows', 'likes', 'sessions', 'schema_migrations']),
      );
    });

    it('answers ping and reads what the primary wrote', async () => {
      await db.ping();
      const id = await addUser();
      const row = await db.reader().selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      expect(row.username).toBe(id);
      expect(row.created_at).toBeInstanceOf(Date);
    });

    it('round-trips jsonb and counts as numbers', async () => {
      const owner = await addUser();
      const id = uid();
      await db.primary
        .insertInto('photos')
        .values({
          id,
          owner_id: owner,
          caption: 'c',
          status: 'ready',
          mime_type: 'image/png',
          width: 1,
          height: 2,
          byte_size: 3,
          variants: JSON.stringify({ thumb: { key: 'k', width: 1, height: 1, bytes: 9 } }) as never,
        })
        .execute();
      const row = await db.primary
        .selectFrom('photos')
        .select('variants')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      expect(row.variants).toEqual({ thumb: { key: 'k', width: 1, height: 1, bytes: 9 } });
      const n = await db.primary
        .selectFrom('photos')
        .select(sql<number>`count(*)::int`.as('n'))
        .where('owner_id', '=', owner)
        .executeTakeFirstOrThrow();
      expect(n.n).toBe(1);
    });

    it('rejects a duplicate username with SQLSTATE 23505', async () => {
      const id = await addUser();
      await expect(
        db.primary.insertInto('users').values({ id: uid(), username: id, password_hash: 'h' }).execute(),
      ).rejects.toMatchObject({ code: '23505' });
    });

    it('commits a transaction and rolls one back on error', async () => {
      const a = uid();
      await db.transaction(async (trx) => {
        await trx.insertInto('users').values({ id: a, username: a, password_hash: 'h' }).execute();
      });
      const b = uid();
      await expect(
        db.transaction(async (trx) => {
          await trx.insertInto('users').values({ id: b, username: b, password_hash: 'h' }).execute();
          throw new Error('abort');
        }),
      ).rejects.toThrow('abort');
      const rows = await db.primary.selectFrom('users').select('id').where('id', 'in', [a, b]).execute();
      expect(rows.map((r) => r.id)).toEqual([a]);
    });

    it('keeps a transaction isolated from queries running beside it', async () => {
      const id = uid();
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const trx = db.transaction(async (t) => {
        await t.insertInto('users').values({ id, username: id, password_hash: 'h' }).execute();
        await gate;
        throw new Error('roll back');
      });
      const outside = db.primary.selectFrom('users').select('id').where('id', '=', id).execute();
      setTimeout(release, 50);
      await expect(trx).rejects.toThrow('roll back');
      expect(await outside).toEqual([]);
      expect(await db.primary.selectFrom('users').select('id').where('id', '=', id).execute()).toEqual([]);
    });
  });
}
