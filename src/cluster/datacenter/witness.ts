import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import client from 'prom-client';
import { sleep, waitUntil } from '../process.ts';
import { guardControlApi } from '../run/guard.ts';
import { readControlToken } from '../run/private.ts';
import { type DataCenterEvent, loadState, updateState } from '../run/state.ts';
import type { Address } from '../topology/address.ts';
import { processesOf } from '../topology/select.ts';
import {
  clusterRoleOf,
  dataCenterRoles,
  hasPrimary,
  othersThan,
  recordEvent,
  setClusterRole,
  standbyStreams,
  synchronousAcrossOf,
} from './roles.ts';
import { switchoverDataCenter } from './switchover.ts';

/**
 * The witness: the third voice of a two-data-center topology, in the global
 * scope (GitHub's 2018 lesson: two sites cannot tell a dead peer from a cut
 * link). Every second it asks whether the primary data center is there, of
 * itself (one of the data center's Patroni nodes answers that it is primary)
 * and of the standby data center (its standby leader is streaming from it).
 * When neither has seen it for `failoverAfterMs`, it fails over:
 *   1. records the new roles in the run's state (the old primary data center
 *      fenced: from here on the supervisor starts its Patroni nodes only as a
 *      standby cluster of the new one);
 *   2. rewrites the old primary's cluster configuration to a standby cluster
 *      at once, if its etcd answers (a primary that is alive but cut off
 *      demotes at its next loop);
 *   3. promotes the standby cluster (its configuration loses
 *      `standby_cluster`), and waits until its database proxy has a primary.
 * A fenced data center whose etcd answers and whose configuration does not
 * say standby is rewritten again, every check.
 */
export interface WitnessOptions {
  runDir: string;
  listen: Address;
  logger: Logger;
  checkEveryMs?: number;
  /** How long the primary data center must be unseen by both voices before the failover (5 s). */
  failoverAfterMs?: number;
  /** Fail over by itself (true), or only when asked (`scaleout dc failover`). */
  automatic?: boolean;
}

export const witnessDefaults = { checkEveryMs: 1000, failoverAfterMs: 5000 };

/** The failover itself (steps 1–3 above), by the witness or by hand. */
export async function failOverDataCenter(
  runDir: string,
  to: string,
  reason: string,
  log: (msg: string, fields?: Record<string, unknown>) => void,
): Promise<DataCenterEvent> {
  const started = Date.now();
  const before = loadState(runDir);
  const roles = dataCenterRoles(before);
  if (roles.primary === to) throw new Error(`${to} already holds the primary`);
  if (!before.topology.dataCenters.some((d) => d.name === to)) throw new Error(`no data center named ${to}`);
  const from = roles.primary;
  const state = updateState(runDir, (s) => {
    s.dataCenterRoles = { primary: to, fenced: [...new Set([...roles.fenced.filter((d) => d !== to), from])] };
  });
  log(`failover ${from} → ${to}: ${reason}; ${from} fenced`);
  const fencedAtOnce = await setClusterRole(state, from, to).then(
    () => true,
    (err: Error) => {
      log(`${from}'s etcd does not answer (${err.message}): it is fenced when it returns`);
      return false;
    },
  );
  await setClusterRole(state, to, undefined);
  await waitUntil(() => hasPrimary(state.topology, to), 60_000, `a primary in ${to}`);
  const event: DataCenterEvent = {
    kind: 'failover',
    from,
    to,
    reason,
    at: new Date(started).toISOString(),
    promotedMs: Date.now() - started,
    fencedAtOnce,
  };
  recordEvent(runDir, event);
  log(`failover ${from} → ${to}: ${to} has a primary after ${event.promotedMs} ms`, { event });
  return event;
}

export interface WitnessView {
  primary: string;
  fenced: string[];
  /** Per data center: whether the witness sees a primary there, and (for a standby one) whether it streams. */
  seen: Record<string, { primary: boolean; streaming?: boolean }>;
  /** Since when neither voice has seen the primary data center (ISO), if so. */
  unseenSince: string | null;
  automatic: boolean;
  failoverAfterMs: number;
  busy: string | null;
  /** Asked for (`scaleout dc sync on`), and in force now (the primary's configuration names the standby's nodes). */
  synchronousAcross: { asked: boolean; on: boolean };
  events: DataCenterEvent[];
}

export async function startWitness(o: WitnessOptions): Promise<{ view(): WitnessView; close(): Promise<void> }> {
  const every = o.checkEveryMs ?? witnessDefaults.checkEveryMs;
  const after = o.failoverAfterMs ?? witnessDefaults.failoverAfterMs;
  const automatic = o.automatic ?? true;
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const primaryGauge = new client.Gauge({
    name: 'scaleout_dc_primary',
    help: 'Whether the data center holds the primary (1), as the run records it',
    labelNames: ['dataCenter'],
    registers: [registry],
  });
  const seenGauge = new client.Gauge({
    name: 'scaleout_dc_primary_seen',
    help: 'Whether a voice sees the primary data center: the witness (its proxy has a primary), the standby (it streams)',
    labelNames: ['dataCenter', 'by'],
    registers: [registry],
  });
  const changes = new client.Counter({
    name: 'scaleout_dc_role_changes_total',
    help: 'Data-center failovers and switchovers',
    labelNames: ['kind', 'to'],
    registers: [registry],
  });
  const log = (msg: string, fields: Record<string, unknown> = {}) => o.logger.warn(fields, msg);

  let view: WitnessView = {
    primary: '',
    fenced: [],
    seen: {},
    unseenSince: null,
    automatic,
    failoverAfterMs: after,
    busy: null,
    synchronousAcross: { asked: false, on: false },
    events: [],
  };
  let unseenSince: number | null = null;
  let notStreamingSince: number | null = null;
  let busy: string | null = null;
  /**
   * The check and the role changes run one at a time. A check reads the roles
   * first and writes cluster configurations from them later (synchronous
   * across, the fence's upkeep); a failover between the two would have its
   * fence written over by a configuration of the roles before it: the old
   * primary data center made a primary cluster again, promoted on a timeline
   * of its own, then fenced again with no rewind that could join it to the
   * new primary's (seen: a by-hand failover right after `dc sync off`).
   */
  let turn: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = turn.then(fn, fn);
    turn = run.catch(() => {});
    return run;
  };
  /** One role change at a time: the loop's failover (already in its turn), or one asked for (waits for its turn). */
  const exclusive = async <T>(what: string, fn: () => Promise<T>, { inTurn = false } = {}): Promise<T> => {
    if (busy) throw new Error(`busy: ${busy}`);
    busy = what;
    try {
      return await (inTurn ? fn() : oneAtATime(fn));
    } finally {
      busy = null;
    }
  };

  const check = async () => {
    const state = loadState(o.runDir);
    const t = state.topology;
    const roles = dataCenterRoles(state);
    const seen: WitnessView['seen'] = {};
    for (const dc of t.dataCenters.map((d) => d.name)) {
      seen[dc] = { primary: await hasPrimary(t, dc) };
      primaryGauge.set({ dataCenter: dc }, dc === roles.primary ? 1 : 0);
    }
    const [standby] = othersThan(t, roles.primary);
    if (standby) (seen[standby] as { streaming?: boolean }).streaming = await standbyStreams(state, standby);
    const byWitness = seen[roles.primary]?.primary === true;
    const byStandby = standby ? seen[standby]?.streaming === true : false;
    seenGauge.set({ dataCenter: roles.primary, by: 'witness' }, byWitness ? 1 : 0);
    seenGauge.set({ dataCenter: roles.primary, by: 'standby' }, byStandby ? 1 : 0);
    if (byWitness || byStandby || busy) unseenSince = null;
    else unseenSince ??= Date.now();
    // Synchronous across the data centers, when asked: on while the standby streams; off (commits would wait
    // for a data center that is not there) once it has not streamed for the failover delay.
    if (byStandby) notStreamingSince = null;
    else notStreamingSince ??= Date.now();
    const asked = state.synchronousAcross === true;
    const syncOn = byWitness ? await synchronousAcrossOf(state, roles.primary).catch(() => null) : null;
    if (standby && syncOn !== null && !busy) {
      const stale = notStreamingSince !== null && Date.now() - notStreamingSince >= after;
      const want = asked && (byStandby || (syncOn && !stale));
      if (want !== syncOn) {
        const nodes = processesOf(t, 'patroni', { dataCenter: standby }).map((n) => n.name);
        await setClusterRole(state, roles.primary, undefined, want ? { synchronousWith: nodes } : {});
        log(
          want
            ? `${roles.primary}'s commits now wait for ${standby} (synchronous across the data centers)`
            : asked
              ? `${standby} has not streamed for ${after} ms: ${roles.primary}'s commits no longer wait for it`
              : `${roles.primary}'s commits no longer wait for ${standby} (asynchronous)`,
        );
      }
    }
    view = {
      primary: roles.primary,
      fenced: roles.fenced,
      seen,
      unseenSince: unseenSince ? new Date(unseenSince).toISOString() : null,
      automatic,
      failoverAfterMs: after,
      busy,
      synchronousAcross: { asked, on: syncOn === true },
      events: state.dataCenterEvents ?? [],
    };
    // The fence's upkeep: a fenced data center back with a configuration that does not say standby.
    for (const dc of roles.fenced) {
      if ((await clusterRoleOf(state, dc).catch(() => 'unreachable')) === 'primary') {
        await setClusterRole(state, dc, roles.primary);
        log(`${dc} came back unfenced: its cluster rewritten to a standby of ${roles.primary}`);
      }
    }
    if (automatic && standby && unseenSince !== null && Date.now() - unseenSince >= after && !busy) {
      const reason = `automatic: ${roles.primary} unseen by the witness and by ${standby} for ${Date.now() - unseenSince} ms`;
      unseenSince = null;
      await exclusive(
        `failover to ${standby}`,
        async () => {
          const e = await failOverDataCenter(o.runDir, standby, reason, log);
          changes.inc({ kind: 'failover', to: standby });
          return e;
        },
        { inTurn: true },
      );
    }
  };

  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      try {
        await oneAtATime(check);
      } catch (err) {
        o.logger.error({ err }, 'witness check failed');
      }
      await sleep(Math.max(0, every - (Date.now() - started)));
    }
  })();

  const app = Fastify({ logger: false });
  guardControlApi(app, { token: readControlToken(o.runDir), listen: o.listen });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/status', async () => view);
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  /** A role change asked for: the data center to promote (default: the other one), one change at a time. */
  const roleChange =
    (kind: 'failover' | 'switchover', run: (target: string) => Promise<DataCenterEvent>) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      const to = (req.body as { to?: unknown } | undefined)?.to;
      const state = loadState(o.runDir);
      const { primary } = dataCenterRoles(state);
      const target = typeof to === 'string' ? to : othersThan(state.topology, primary)[0];
      if (!target || !state.topology.dataCenters.some((d) => d.name === target))
        return reply.code(400).send({ error: `no data center named ${String(to)}` });
      if (target === primary) return reply.code(409).send({ error: `${target} already holds the primary` });
      if (busy) return reply.code(409).send({ error: `busy: ${busy}` });
      try {
        const event = await exclusive(`${kind} to ${target}`, () => run(target));
        changes.inc({ kind, to: target });
        return { event };
      } catch (err) {
        return reply.code(409).send({ error: (err as Error).message });
      }
    };
  app.post('/synchronous', async (req, reply) => {
    const on = (req.body as { on?: unknown } | undefined)?.on;
    if (typeof on !== 'boolean') return reply.code(400).send({ error: 'expected {"on": true|false}' });
    updateState(o.runDir, (s) => {
      s.synchronousAcross = on;
    });
    // In force at the next check: the primary's configuration rewritten, Patroni's reload.
    return { synchronousAcross: on };
  });
  app.post(
    '/failover',
    roleChange('failover', (target) => failOverDataCenter(o.runDir, target, 'by hand (scaleout dc failover)', log)),
  );
  app.post(
    '/switchover',
    roleChange('switchover', (target) => switchoverDataCenter(o.runDir, target, log)),
  );
  await app.listen({ host: o.listen.host, port: o.listen.port });
  o.logger.info({ automatic, failoverAfterMs: after }, `witness of ${loadState(o.runDir).topology.name} listening`);
  return {
    view: () => view,
    async close() {
      stopped = true;
      await loop;
      await app.close();
    },
  };
}
