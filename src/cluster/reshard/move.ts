import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { fence, unfence } from '../../platform/db/fence.ts';
import { migrate } from '../../platform/db/migrate.ts';
import type { Database } from '../../ports/db.ts';
import { type ShardMap, shardSchema } from '../../ports/shards.ts';
import { primaryClient } from '../components/db-proxy/query.ts';
import { holdMoveLock, readShardMap, writeShardMap } from '../components/db-proxy/shard-map.ts';
import { appDatabase, appUser } from '../components/postgres/server.ts';
import type { ClusterState } from '../run/state.ts';
import type { SpecOf } from '../topology/schema.ts';
import { processesOf } from '../topology/select.ts';

/** What a move did, step by step, and what it measured. */
export interface MoveReport {
  shard: number;
  from: string;
  to: string;
  /** The map's version after the switch. */
  mapVersion: number;
  /** The shard's size on the source before the move (tables and indexes), bytes. */
  bytes: number;
  rows: Record<string, number>;
  /** ms: the initial copy, the catch-up after the fence, the fenced time (writes to the shard wait), the whole move. */
  copyMs: number;
  catchUpMs: number;
  fencedMs: number;
  totalMs: number;
  /** Copy attempts (more than one: a copy was lost, for one to a failover of the source, and started again). */
  attempts: number;
}

type Client = pg.Client;

/** The proxy of a shard cluster: where its primary is reached. */
function proxyOf(state: ClusterState, cluster: string) {
  const proxy = processesOf(state.topology, 'dbProxy').find((p) => p.cluster === cluster);
  if (!proxy) throw new Error(`no shard cluster named ${cluster}`);
  return proxy;
}

const connect = (state: ClusterState, cluster: string, as: 'superuser' | 'app' = 'superuser'): Promise<Client> => {
  proxyOf(state, cluster);
  return primaryClient(state, cluster, as);
};

/** `connect`, tried again for up to `ms` (a cluster's primary failing over: its proxy answers again once Patroni has a new leader). */
async function connectRetrying(
  state: ClusterState,
  cluster: string,
  ms = 45_000,
  as: 'superuser' | 'app' = 'superuser',
): Promise<Client> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const c = await connect(state, cluster, as);
      // A primary: a replica still answering through the proxy during the failover would refuse writes.
      const { rows } = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      if (!rows[0]?.r) return c;
      await c.end().catch(() => {});
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error(`no primary of ${cluster} within ${ms} ms`);
    await sleep(500);
  }
}

const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Row count and an MD5 of every row (in a fixed order) of each table of `schema`. */
export async function shardDigest(db: Client, schema: string): Promise<Record<string, { rows: number; md5: string }>> {
  const { rows: tables } = await db.query<{ tablename: string }>(
    `SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'schema_migrations' ORDER BY 1`,
    [schema],
  );
  const out: Record<string, { rows: number; md5: string }> = {};
  for (const { tablename } of tables) {
    const { rows } = await db.query<{ n: number; md5: string | null }>(
      `SELECT count(*)::int AS n, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) AS md5
         FROM ${ident(schema)}.${ident(tablename)} t`,
    );
    out[tablename] = { rows: rows[0]?.n ?? 0, md5: rows[0]?.md5 ?? '' };
  }
  return out;
}

const sameDigest = (
  a: Record<string, { rows: number; md5: string }>,
  b: Record<string, { rows: number; md5: string }>,
) =>
  Object.keys(a).length === Object.keys(b).length &&
  Object.entries(a).every(([t, d]) => b[t]?.rows === d.rows && b[t]?.md5 === d.md5);

/** The target's schema, made by the site's own user (so it owns the tables, as on the source), fenced. */
async function prepareTarget(state: ClusterState, to: string, schema: string): Promise<void> {
  const proxy = proxyOf(state, to);
  const k = new Kysely<Database>({
    dialect: new PostgresDialect({
      pool: new pg.Pool({
        host: proxy.primary.host,
        port: proxy.primary.port,
        user: appUser,
        password: state.secrets.app,
        database: appDatabase,
        max: 1,
      }),
    }),
  });
  try {
    await migrate(k, schema);
  } finally {
    await k.destroy();
  }
  const target = await connect(state, to);
  try {
    await fence(target, schema);
  } finally {
    await target.end();
  }
}

/** Drops what a move made on the target (its subscription, with its slot when the source still has it) and its schema. */
async function dropTargetSide(target: Client, name: string, schema: string, keepSchema = false): Promise<void> {
  const { rows } = await target.query('SELECT 1 FROM pg_subscription WHERE subname = $1', [name]);
  if (rows.length > 0) {
    await target.query(`ALTER SUBSCRIPTION ${ident(name)} DISABLE`).catch(() => {});
    // Without the source, the slot cannot be dropped from here: detach it first.
    await target.query(`DROP SUBSCRIPTION ${ident(name)}`).catch(async () => {
      await target.query(`ALTER SUBSCRIPTION ${ident(name)} SET (slot_name = NONE)`);
      await target.query(`DROP SUBSCRIPTION ${ident(name)}`);
    });
  }
  if (!keepSchema) await target.query(`DROP SCHEMA IF EXISTS ${ident(schema)} CASCADE`);
}

async function dropSourceSide(source: Client, name: string): Promise<void> {
  await source.query(`DROP PUBLICATION IF EXISTS ${ident(name)}`);
  const { rows } = await source.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [name]);
  if (rows.length > 0) await source.query('SELECT pg_drop_replication_slot($1)', [name]).catch(() => {});
}

/**
 * Waits until every table of the subscription is copied and streaming
 * (pg_subscription_rel 'r'); false when the copy was lost: the source's
 * primary no longer has the slot (it failed over: PostgreSQL 15's slots are
 * not kept on its replicas), asked through a fresh connection each second.
 */
async function waitCopied(
  target: Client,
  sourceHasSlot: () => Promise<boolean | undefined>,
  name: string,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let nextSlotCheck = Date.now() + 1000;
  while (Date.now() < deadline) {
    const { rows } = await target.query<{ total: number; ready: number }>(
      `SELECT count(*)::int AS total, count(*) FILTER (WHERE srsubstate = 'r')::int AS ready
         FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`,
      [name],
    );
    const r = rows[0];
    if (r && r.total > 0 && r.ready === r.total) return true;
    if (Date.now() >= nextSlotCheck) {
      if ((await sourceHasSlot()) === false) return false;
      nextSlotCheck = Date.now() + 1000;
    }
    await sleep(100);
  }
  return false;
}

/**
 * Moves logical shard `shard` to cluster `to` while the site takes writes,
 * as Vitess's MoveTables and Citus's non-blocking moves do:
 * 1. the target gets the shard's schema (made by the site's user), fenced;
 * 2. the source publishes the schema's tables (all but its record of
 *    migrations), the target subscribes: the rows are copied, then every
 *    change streams;
 * 3. the source is fenced (in-flight writes commit first; new ones wait in
 *    the web servers for the map), and the target catches up to its last WAL
 *    position;
 * 4. row counts and an MD5 of every table must match on both sides;
 * 5. the target's sequences take the source's values, the target is
 *    unfenced, then the map switches (compare-and-swap in
 *    etcd): at every moment at most one cluster takes the shard's writes;
 * 6. the subscription, the publication and the source's schema go.
 * A failure before 5 rolls back (the source is unfenced, the target's copy
 * dropped); a copy lost to a source failover starts again (up to 3 times).
 */
export async function moveShard(
  state: ClusterState,
  o: { shard: number; to: string; log?: (line: string) => void; copyTimeoutMs?: number },
): Promise<MoveReport> {
  const [etcd] = processesOf(state.topology, 'etcd');
  if (!etcd) throw new Error('this topology has no etcd, so no shard map');
  proxyOf(state, o.to);
  const lock = await holdMoveLock(etcd, state.secrets.etcd, { shard: o.shard, to: o.to });
  try {
    // Read under the lock: no other move changes it now.
    const stored = await readShardMap(etcd, state.secrets.etcd);
    if (!stored) throw new Error('this topology has no shard map: is it sharded?');
    const from = stored.map.clusters[o.shard];
    if (from === undefined) throw new Error(`no logical shard ${o.shard} (0 to ${stored.map.clusters.length - 1})`);
    if (from === o.to) throw new Error(`logical shard ${o.shard} is on ${o.to} already`);
    return await moveLocked(state, etcd, o, from, stored);
  } finally {
    await lock.release();
  }
}

/** The move itself, under the topology's move lock. */
async function moveLocked(
  state: ClusterState,
  etcd: SpecOf<'etcd'>,
  o: { shard: number; to: string; log?: (line: string) => void; copyTimeoutMs?: number },
  from: string,
  stored: { map: ShardMap; revision: string },
): Promise<MoveReport> {
  const log = o.log ?? (() => {});
  const schema = shardSchema(o.shard);
  const name = `move_${schema}`;
  const started = performance.now();
  let source = await connect(state, from);
  let target = await connect(state, o.to);
  let fencedAt: number | undefined;
  let switched = false;
  try {
    const size = await source.query<{ bytes: string }>(
      `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS bytes FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`,
      [schema],
    );
    // What an earlier move of this shard left (it failed, or was stopped): start clean.
    await dropTargetSide(target, name, schema);
    await dropSourceSide(source, name);
    let attempts = 0;
    let copyMs = 0;
    for (;;) {
      attempts++;
      const copyStarted = performance.now();
      await prepareTarget(state, o.to, schema);
      // Every table of the schema but its record of migrations (the target's own migrate wrote it).
      const { rows: tables } = await source.query<{ tablename: string }>(
        `SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'schema_migrations' ORDER BY 1`,
        [schema],
      );
      await source.query(
        `CREATE PUBLICATION ${ident(name)} FOR TABLE ${tables.map((t) => `${ident(schema)}.${ident(t.tablename)}`).join(', ')}`,
      );
      const proxy = proxyOf(state, from);
      const conninfo = `host=${proxy.primary.host} port=${proxy.primary.port} user=postgres password=${state.secrets.superuser} dbname=${appDatabase}`;
      await target.query(
        `CREATE SUBSCRIPTION ${ident(name)} CONNECTION '${conninfo.replace(/'/g, "''")}' PUBLICATION ${ident(name)} WITH (copy_data = true)`,
      );
      log(`  copying ${schema} from ${from} to ${o.to} (attempt ${attempts})`);
      const sourceHasSlot = async () => {
        const c = await connect(state, from).catch(() => undefined);
        if (!c) return undefined;
        try {
          return (await c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [name])).rows.length > 0;
        } catch {
          return undefined;
        } finally {
          await c.end().catch(() => {});
        }
      };
      if (await waitCopied(target, sourceHasSlot, name, o.copyTimeoutMs ?? 120_000)) {
        copyMs = performance.now() - copyStarted;
        break;
      }
      if (attempts >= 3) throw new Error(`the copy of ${schema} did not complete in 3 attempts`);
      log('  the copy was lost (the source failed over?): starting it again');
      await target.end().catch(() => {});
      await source.end().catch(() => {});
      source = await connectRetrying(state, from);
      target = await connectRetrying(state, o.to);
      await dropTargetSide(target, name, schema);
      await dropSourceSide(source, name);
    }
    log(`  copied in ${Math.round(copyMs)} ms; fencing ${schema} on ${from}`);
    await fence(source, schema);
    fencedAt = performance.now();
    // Caught up: with the source fenced its rows no longer change, so the target has caught up when
    // every table's row count and MD5 match the source's.
    const expected = await shardDigest(source, schema);
    let catchUpMs = 0;
    for (let i = 0; ; i++) {
      if (sameDigest(expected, await shardDigest(target, schema))) {
        catchUpMs = performance.now() - fencedAt;
        break;
      }
      if (i > 300) throw new Error(`${o.to} did not catch up with ${from} on ${schema} within 30 s`);
      await sleep(100);
    }
    log(
      `  caught up in ${Math.round(catchUpMs)} ms; ${Object.entries(expected)
        .map(([t, d]) => `${t} ${d.rows}`)
        .join(', ')} rows match`,
    );
    await dropTargetSide(target, name, schema, true);
    // Logical replication carries rows, not sequences: the target's go on from the source's.
    const { rows: sequences } = await source.query<{ name: string; last: string | null }>(
      `SELECT sequencename AS name, last_value::text AS last FROM pg_sequences WHERE schemaname = $1`,
      [schema],
    );
    for (const q of sequences) {
      if (q.last !== null)
        await target.query('SELECT setval($1, $2::bigint)', [`${ident(schema)}.${ident(q.name)}`, q.last]);
    }
    await unfence(target, schema);
    const next: ShardMap = {
      version: stored.map.version + 1,
      clusters: stored.map.clusters.map((c, k) => (k === o.shard ? o.to : c)),
    };
    if (!(await writeShardMap(etcd, state.secrets.etcd, next, stored.revision))) {
      await fence(target, schema);
      throw new Error('the shard map changed meanwhile (another move?): rolled back');
    }
    switched = true;
    const fencedMs = performance.now() - fencedAt;
    log(`  map version ${next.version}: ${schema} on ${o.to}; writes were fenced for ${Math.round(fencedMs)} ms`);
    await dropSourceSide(source, name);
    // Readers with the old map find the schema gone and follow the map (a statement waits for it, then runs on the target).
    await source.query(`DROP SCHEMA ${ident(schema)} CASCADE`);
    return {
      shard: o.shard,
      from,
      to: o.to,
      mapVersion: next.version,
      bytes: Number(size.rows[0]?.bytes ?? 0),
      rows: Object.fromEntries(Object.entries(expected).map(([t, d]) => [t, d.rows])),
      copyMs: Math.round(copyMs),
      catchUpMs: Math.round(catchUpMs),
      fencedMs: Math.round(fencedMs),
      totalMs: Math.round(performance.now() - started),
      attempts,
    };
  } catch (err) {
    if (!switched) {
      log(`  the move failed (${(err as Error).message}): rolling back`);
      await dropTargetSide(target, name, schema).catch(() => {});
      // The source again (a new primary, if it failed over: the fence is in its catalog too), unfenced.
      const again = await connectRetrying(state, from).catch(() => undefined);
      if (again) {
        if (fencedAt !== undefined) await unfence(again, schema).catch(() => {});
        await dropSourceSide(again, name).catch(() => {});
        await again.end();
      } else if (fencedAt !== undefined) {
        log(
          `  ${from} did not come back: ${schema} stays fenced there; "scaleout reshard move" again finishes or undoes it`,
        );
      }
    }
    throw err;
  } finally {
    await source.end().catch(() => {});
    await target.end().catch(() => {});
  }
}
