import { Pool } from 'undici';
import { isLeader, patroniCluster } from '../cluster/components/patroni/cluster.ts';
import { killHard } from '../cluster/process.ts';
import { type ClusterState, postmasterPid, queryPrimary } from '../cluster/run/index.ts';
import { allProcesses, type ProcessSpec } from '../cluster/topology/index.ts';
import { startPreset } from './targets.ts';

export interface FailoverResult {
  mode: 'synchronous' | 'asynchronous';
  writeRate: number;
  sent: number;
  acknowledged: number;
  failed: number;
  /** From the kill to the first acknowledged write that was sent after it. */
  secondsUntilWritesResume: number | null;
  acknowledgedButLost: number;
  oldLeader: string;
  newLeader: string | undefined;
}

/**
 * Kills the primary (Patroni and its PostgreSQL, kill -9) under a steady load
 * of follows through the load balancer, then checks every acknowledged follow
 * on the new primary. Follows are cheap writes with a unique key each, so
 * "acknowledged but lost" is exact.
 */
export async function benchFailover(opts: {
  synchronous: boolean;
  writeRate: number;
  users: number;
  seconds: number;
  killAfterSeconds: number;
  /** Leave the topology running afterwards, to read its logs. */
  keep?: boolean;
  log: (l: string) => void;
}): Promise<FailoverResult> {
  const target = await startPreset('lb', {
    name: `failover-${opts.synchronous ? 'sync' : 'async'}`,
    synchronous: opts.synchronous,
  });
  const { state, runRoot } = target;
  const http = new Pool(state.publicUrl, { connections: 64 });
  try {
    const call = async (method: 'POST' | 'PUT', p: string, body?: unknown, token?: string) => {
      const res = await http.request({
        method,
        path: p,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
      const text = await res.body.text();
      return { status: res.statusCode, json: text ? JSON.parse(text) : undefined };
    };
    const names = Array.from({ length: opts.users }, (_, i) => `fo_${i}`);
    const tokens: string[] = [];
    for (const username of names) {
      await call('POST', '/api/v1/users', { username, password: 'failover-pass-1' });
      tokens.push((await call('POST', '/api/v1/sessions', { username, password: 'failover-pass-1' })).json.token);
    }
    opts.log(`${names.length} users ready; writing ${opts.writeRate} follows/s for ${opts.seconds} s`);

    // Each write is a distinct (follower, followee) pair.
    const pairs: [number, number][] = [];
    for (let a = 0; a < names.length; a++) for (let b = 0; b < names.length; b++) if (a !== b) pairs.push([a, b]);
    const total = Math.min(pairs.length, opts.writeRate * opts.seconds);
    const acked: [number, number][] = [];
    const ackTimes: { sent: number; done: number }[] = [];
    let failed = 0;
    const nodes = allProcesses(state.topology).filter(
      (p): p is Extract<ProcessSpec, { kind: 'patroni' }> => p.kind === 'patroni',
    );
    const oldLeader = ((await patroniCluster(nodes)) ?? []).find(isLeader)?.name ?? '';
    const start = Date.now();
    let killedAt = Number.POSITIVE_INFINITY;
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / opts.writeRate;
      if (killedAt === Number.POSITIVE_INFINITY && due - start >= opts.killAfterSeconds * 1000) {
        killedAt = Date.now();
        killPrimary(state, oldLeader);
        opts.log(`killed ${oldLeader} (Patroni and PostgreSQL) at ${((killedAt - start) / 1000).toFixed(1)} s`);
      }
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const [a, b] = pairs[i] as [number, number];
      const sent = Date.now();
      inflight.push(
        call('PUT', `/api/v1/users/${names[b]}/follow`, undefined, tokens[a])
          .then((res) => {
            if (res.status === 204) {
              acked.push([a, b]);
              ackTimes.push({ sent, done: Date.now() });
            } else failed++;
          })
          .catch(() => {
            failed++;
          }),
      );
    }
    await Promise.all(inflight);
    const resumed = ackTimes.filter((t) => t.sent > killedAt).sort((x, y) => x.done - y.done)[0];
    const newLeader = ((await patroniCluster(nodes)) ?? []).find(isLeader)?.name;

    // Check every acknowledged write on the (new) primary.
    const rows = await queryPrimary<{ follower: string; followee: string }>(
      state,
      'SELECT a.username AS follower, b.username AS followee FROM follows f JOIN users a ON a.id = f.follower_id JOIN users b ON b.id = f.followee_id',
    );
    const present = new Set(rows.rows.map((r) => `${r.follower}>${r.followee}`));
    const lost = acked.filter(([a, b]) => !present.has(`${names[a]}>${names[b]}`)).length;
    return {
      mode: opts.synchronous ? 'synchronous' : 'asynchronous',
      writeRate: opts.writeRate,
      sent: total,
      acknowledged: acked.length,
      failed,
      secondsUntilWritesResume: resumed ? (resumed.done - killedAt) / 1000 : null,
      acknowledgedButLost: lost,
      oldLeader,
      newLeader,
    };
  } finally {
    await http.close();
    if (opts.keep) opts.log(`left running: ${state.runDir} ("SCALEOUT_RUN_ROOT=${runRoot} scaleout down")`);
    else await target.stop();
  }
}

function killPrimary(state: ClusterState, node: string) {
  const postmaster = postmasterPid(state.runDir, node);
  const patroni = state.processes.find((p) => p.name === node)?.pid;
  if (patroni) killHard(patroni);
  if (postmaster) killHard(postmaster);
}
