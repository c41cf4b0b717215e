import { sql } from 'kysely';
import type { Db } from '../../ports/db.ts';
import type { IdempotencyClaim, IdempotencyStore, StoredResponse } from '../../ports/idempotency.ts';

interface Row {
  fingerprint: string;
  response: StoredResponse | string | null;
}

/**
 * Idempotency records in the relational store, on the primary (the single
 * server's durable store): a row per key; an expired record, or a running one
 * whose lease passed, is taken over by the next claim.
 */
export function createDatabaseIdempotencyStore(db: Db): IdempotencyStore {
  let claims = 0;
  return {
    async claim(key, fingerprint, leaseMs): Promise<IdempotencyClaim> {
      const lease = `${Math.max(1, Math.round(leaseMs))} milliseconds`;
      const taken = await sql<{ key: string }>`
        INSERT INTO idempotency_keys AS k (key, fingerprint, response, locked_until, expires_at)
        VALUES (${key}, ${fingerprint}, NULL, now() + ${lease}::interval, now() + ${lease}::interval)
        ON CONFLICT (key) DO UPDATE SET
          fingerprint = excluded.fingerprint, response = NULL,
          locked_until = excluded.locked_until, expires_at = excluded.expires_at
        WHERE k.expires_at <= now() OR (k.response IS NULL AND k.locked_until <= now())
        RETURNING key`.execute(db.primary);
      // Expired records are removed now and then by the writers.
      if (++claims % 100 === 0) await sql`DELETE FROM idempotency_keys WHERE expires_at < now()`.execute(db.primary);
      if (taken.rows.length > 0) return { state: 'claimed' };
      const row = (
        await sql<Row>`SELECT fingerprint, response FROM idempotency_keys WHERE key = ${key}`.execute(db.primary)
      ).rows[0];
      // Gone between the two statements (expired and removed): the next attempt claims it.
      if (!row) return { state: 'running', fingerprint };
      const response = typeof row.response === 'string' ? (JSON.parse(row.response) as StoredResponse) : row.response;
      return response
        ? { state: 'done', fingerprint: row.fingerprint, response }
        : { state: 'running', fingerprint: row.fingerprint };
    },
    async complete(key, fingerprint, response, ttlSeconds) {
      const ttl = `${Math.max(1, Math.round(ttlSeconds))} seconds`;
      await sql`
        UPDATE idempotency_keys SET response = ${JSON.stringify(response)}::jsonb, expires_at = now() + ${ttl}::interval
        WHERE key = ${key} AND fingerprint = ${fingerprint}`.execute(db.primary);
    },
    async release(key, fingerprint) {
      await sql`DELETE FROM idempotency_keys WHERE key = ${key} AND fingerprint = ${fingerprint} AND response IS NULL`.execute(
        db.primary,
      );
    },
  };
}
