import { parseLsn } from '../../platform/db/consistency.ts';
import { superuserClient } from '../components/db-proxy/query.ts';
import { isStandbyLeader, patroniCluster } from '../components/patroni/cluster.ts';
import { sleep, waitUntil } from '../process.ts';
import { type ClusterState, type DataCenterEvent, loadState, updateState } from '../run/state.ts';
import { processesOf } from '../topology/select.ts';
import { databaseProxyOf, dataCenterRoles, hasPrimary, recordEvent, setClusterRole, standbyStreams } from './roles.ts';

/** `dataCenter`'s standby leader's last replayed WAL position. */
async function replayedLsn(state: ClusterState, dataCenter: string): Promise<bigint | null> {
  const members = await patroniCluster(processesOf(state.topology, 'patroni', { dataCenter }));
  const leader = members?.find(isStandbyLeader);
  if (!leader) return null;
  const c = await superuserClient(state, leader);
  try {
    const r = await c.query<{ lsn: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
    return r.rows[0]?.lsn ? parseLsn(r.rows[0].lsn) : null;
  } finally {
    await c.end().catch(() => {});
  }
}

/**
 * A planned move of the primary to `to`, losing no acknowledged write: in the
 * manner of CloudNativePG's demotion token.
 *   1. The primary data center's cluster turns read-only (every session's
 *      default, at Patroni's next reload); write transactions still open are
 *      given 5 s to end, then ended.
 *   2. The token: the primary's current WAL position. Every write ever
 *      acknowledged is before it.
 *   3. `to`'s standby leader replays up to the token (30 s at most; else the
 *      primary is made writable again and nothing else changes).
 *   4. The old primary's cluster becomes a standby of `to` (it demotes: it
 *      has nothing past the token, so it follows the new timeline), then
 *      `to` is promoted.
 * Writes sent meanwhile fail (read-only, then no primary) and are not
 * acknowledged: a client sends them again with their Idempotency-Key.
 */
export async function switchoverDataCenter(
  runDir: string,
  to: string,
  log: (msg: string, fields?: Record<string, unknown>) => void,
): Promise<DataCenterEvent> {
  const state = loadState(runDir);
  const roles = dataCenterRoles(state);
  const from = roles.primary;
  if (from === to) throw new Error(`${to} already holds the primary`);
  if (!(await standbyStreams(state, to)))
    throw new Error(`${to} is not streaming from ${from}: a switchover needs it caught up (a failover does not)`);
  const started = Date.now();
  log(`switchover ${from} → ${to}: ${from} read-only`);
  await setClusterRole(state, from, undefined, { readOnly: true });
  const primary = databaseProxyOf(state.topology, from).localPrimary as { host: string; port: number };
  let token: string;
  try {
    const c = await superuserClient(state, primary);
    try {
      // Patroni writes the setting and reloads at its next loop; this session sees it between two queries.
      await waitUntil(
        async () =>
          (await c.query<{ ro: string }>("SELECT current_setting('default_transaction_read_only') AS ro")).rows[0]
            ?.ro === 'on',
        10_000,
        `${from}'s primary read-only`,
      );
      // Open write transactions: 5 s to end, then ended (their clients were never told they committed).
      const open = async () =>
        Number(
          (
            await c.query<{ n: string }>(
              'SELECT count(*) AS n FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()',
            )
          ).rows[0]?.n ?? 0,
        );
      const until = Date.now() + 5000;
      while ((await open()) > 0 && Date.now() < until) await sleep(100);
      await c.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()',
      );
      token = (await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn as string;
    } finally {
      await c.end().catch(() => {});
    }
    const wanted = parseLsn(token) as bigint;
    log(`switchover ${from} → ${to}: demotion token ${token}; waiting for ${to} to replay it`);
    await waitUntil(
      async () => ((await replayedLsn(state, to).catch(() => null)) ?? -1n) >= wanted,
      30_000,
      `${to} to replay ${token}`,
    );
  } catch (err) {
    await setClusterRole(state, from, undefined);
    log(`switchover ${from} → ${to} abandoned: ${(err as Error).message}; ${from} writable again`);
    throw err;
  }
  const next = updateState(runDir, (s) => {
    s.dataCenterRoles = { primary: to, fenced: roles.fenced.filter((d) => d !== to) };
  });
  await setClusterRole(next, from, to);
  await waitUntil(async () => !(await hasPrimary(next.topology, from)), 30_000, `${from} to demote`);
  await setClusterRole(next, to, undefined);
  await waitUntil(() => hasPrimary(next.topology, to), 60_000, `a primary in ${to}`);
  const event: DataCenterEvent = {
    kind: 'switchover',
    from,
    to,
    reason: 'by hand (scaleout dc switchover)',
    at: new Date(started).toISOString(),
    promotedMs: Date.now() - started,
    lsn: token,
  };
  recordEvent(runDir, event);
  log(`switchover ${from} → ${to}: ${to} has a primary after ${event.promotedMs} ms`, { event });
  return event;
}
