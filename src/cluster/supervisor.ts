import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import Fastify from 'fastify';
import client from 'prom-client';
import { z } from 'zod';
import { createLogger } from '../platform/observability/logger.ts';
import { type Decision, decide, InFlightWindow } from './autoscaler.ts';
import { backendServers } from './components/haproxy.ts';
import { howExited, loadState, type ProcessExit, restart, startAll, updateState } from './launcher.ts';
import { exits, isAlive, sleep } from './process.ts';
import { allProcesses, autoscalePolicy, type ProcessSpec, webServers } from './topology.ts';
import { deployWebTier, scaleWebTier } from './web-tier.ts';

/**
 * Restart policy: Kubernetes' crash-loop back-off. The first restart comes
 * 10 s after a process dies, each further one waits twice as long, up to
 * 5 min; a process that has run 10 min without dying starts again at 10 s.
 * (systemd's `Restart=on-failure` restarts after 100 ms and gives up after 5
 * starts in 10 s: a server that cannot start would then stay down; and 10 s
 * is longer than Patroni's leader TTL, so a killed leader's node comes back
 * after a new leader is elected, as a replica.)
 */
export const restartBackoff = { firstMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 };

export const backoffDelay = (crashes: number): number =>
  Math.min(restartBackoff.maxMs, restartBackoff.firstMs * 2 ** Math.max(0, crashes - 1));

/**
 * `up` of a supervised topology, run by the supervisor: it starts every
 * process itself (so each is its child, and it sees how each one ends),
 * writing progress to logs/up.log for the `up` that waits on it. On failure
 * the state says so and the process exits.
 */
export async function launchTopology(runDir: string): Promise<void> {
  const state = loadState(runDir);
  const launchFile = path.join(runDir, 'launch.json');
  const { webEnv } = JSON.parse(readFileSync(launchFile, 'utf8')) as { webEnv: Record<string, string> };
  rmSync(launchFile, { force: true });
  const progress = path.join(runDir, 'logs', 'up.log');
  const self = allProcesses(state.topology).find((p) => p.kind === 'supervisor');
  try {
    await startAll(state, webEnv, (line) => appendFileSync(progress, `${line}\n`), {
      pid: process.pid,
      log: path.join(runDir, 'logs', `${self?.name ?? 'supervisor'}.log`),
    });
  } catch (err) {
    process.stderr.write(`start failed: ${(err as Error).stack}\n`);
    process.exit(1);
  }
}

/** How the supervisor samples the balancer for the autoscaler's metric. */
const sampleEveryMs = 250;
const sampleWindowMs = 10_000;

type Supervisor = Extract<ProcessSpec, { kind: 'supervisor' }>;

/**
 * The supervisor of one running topology (`scaleout supervise`, started by
 * `up`): keeps every other process running, runs the web tier's autoscaler,
 * and carries out `scale`, `autoscale` and `deploy` (one change at a time)
 * through a private control API.
 */
export async function runSupervisor(runDir: string): Promise<{ close(): Promise<void> }> {
  const load = () => loadState(runDir);
  const initial = load();
  const spec = allProcesses(initial.topology).find((p): p is Supervisor => p.kind === 'supervisor');
  if (!spec) throw new Error('this topology has no supervisor');
  const logger = createLogger('info', { service: 'supervisor', topology: initial.topology.name });
  const lb = allProcesses(initial.topology).find((p) => p.kind === 'loadBalancer');

  const registry = new client.Registry();
  const restartsTotal = new client.Counter({
    name: 'scaleout_process_restarts_total',
    help: 'Processes the supervisor started again after they died',
    labelNames: ['process', 'kind'],
    registers: [registry],
  });
  new client.Gauge({
    name: 'scaleout_web_servers',
    help: 'Web servers of the topology',
    registers: [registry],
    collect() {
      this.set(webServers(load().topology).length);
    },
  });
  const inFlightGauge = new client.Gauge({
    name: 'scaleout_autoscaler_in_flight_per_server',
    help: "The autoscaler's metric: requests in flight per ready web server, mean over 10 s",
    registers: [registry],
  });
  const desiredGauge = new client.Gauge({
    name: 'scaleout_autoscaler_desired_servers',
    help: "The autoscaler's last decision",
    registers: [registry],
  });
  const targetGauge = new client.Gauge({
    name: 'scaleout_autoscaler_target',
    help: 'Requests in flight per web server the autoscaler aims for',
    registers: [registry],
  });

  // ---- one change of the web tier at a time ----
  let operation: string | null = null;
  let queue: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(async () => {
      operation = name;
      try {
        return await fn();
      } finally {
        operation = null;
      }
    });
    queue = run.catch(() => {});
    return run;
  };
  const tierLog = (msg: string, fields: Record<string, unknown> = {}) => logger.info(fields, msg);

  // ---- restarts ----
  const exitOf = new Map<number, { code: number | null; signal: string | null }>();
  exits.on('exit', (pid, code, signal) => exitOf.set(pid, { code, signal }));
  const pending = new Map<string, { pid: number; due: number }>();
  const crashes = new Map<string, { count: number; startedAt: number }>();
  const restarting = new Set<string>();
  const startedAt = Date.now();

  const restartNow = async (name: string) => {
    restarting.add(name);
    pending.delete(name);
    try {
      const entry = await restart(load(), name, { counted: true });
      restartsTotal.inc({ process: name, kind: entry.kind });
      const c = crashes.get(name);
      if (c) c.startedAt = Date.now();
      logger.warn({ process: name, pid: entry.pid, restarts: entry.restarts }, `${name} restarted`);
    } catch (err) {
      const c = crashes.get(name) ?? { count: 0, startedAt: Date.now() };
      c.count++;
      crashes.set(name, c);
      const delay = backoffDelay(c.count);
      const current = load().processes.find((p) => p.name === name);
      if (current) pending.set(name, { pid: current.pid, due: Date.now() + delay });
      logger.error(
        { err, process: name, retryInMs: delay },
        `${name} did not start again; next try in ${delay / 1000} s`,
      );
    } finally {
      restarting.delete(name);
    }
  };

  const watch = () => {
    const state = load();
    const now = Date.now();
    for (const p of state.processes) {
      if (p.kind === 'supervisor' || restarting.has(p.name)) continue;
      if (isAlive(p.pid)) {
        pending.delete(p.name);
        continue;
      }
      const waiting = pending.get(p.name);
      if (waiting?.pid === p.pid) {
        if (now >= waiting.due) void restartNow(p.name);
        continue;
      }
      // A death not seen before.
      const code = exitOf.get(p.pid);
      const lastExit: ProcessExit = {
        at: new Date().toISOString(),
        code: code?.code ?? null,
        signal: code?.signal ?? null,
      };
      const c = crashes.get(p.name) ?? { count: 0, startedAt };
      if (now - c.startedAt >= restartBackoff.resetAfterMs) c.count = 0;
      c.count++;
      crashes.set(p.name, c);
      const delay = backoffDelay(c.count);
      pending.set(p.name, { pid: p.pid, due: now + delay });
      updateState(runDir, (s) => {
        const entry = s.processes.find((x) => x.name === p.name && x.pid === p.pid);
        if (entry) entry.lastExit = lastExit;
      });
      logger.warn(
        { process: p.name, kind: p.kind, pid: p.pid, lastExit, crashes: c.count, restartInMs: delay },
        `${p.name} (pid ${p.pid}) died: ${howExited(lastExit)}; restart in ${delay / 1000} s`,
      );
    }
  };
  const watchTimer = setInterval(() => {
    try {
      watch();
    } catch (err) {
      logger.error({ err }, 'watch failed');
    }
  }, 500);

  // ---- the autoscaler ----
  const window = new InFlightWindow(sampleWindowMs);
  const history: { at: number; recommendation: number }[] = [];
  const decisions: Decision[] = [];
  let sampling = false;
  const sampleTimer = setInterval(async () => {
    if (lb?.kind !== 'loadBalancer' || sampling) return;
    sampling = true;
    try {
      const servers = await backendServers(lb);
      const ready = servers.filter((s) => s.status.startsWith('UP')).length;
      const inFlight = servers.reduce((a, s) => a + s.current + s.queued, 0);
      window.add(Date.now(), inFlight, ready);
      inFlightGauge.set(window.mean());
    } catch {
      // the balancer is restarting: no sample
    } finally {
      sampling = false;
    }
  }, sampleEveryMs);
  let lastDecisionAt = Date.now();
  // Once a second (the shortest period): one read of the state for the policy and the count.
  const decideTimer = setInterval(() => {
    const state = load();
    const policy = state.topology.options.autoscale;
    if (!policy?.enabled) return;
    targetGauge.set(policy.target);
    if (Date.now() - lastDecisionAt < policy.periodSeconds * 1000 - 100 || operation) return;
    lastDecisionAt = Date.now();
    const current = webServers(state.topology).length;
    const d = decide(Date.now(), current, window.mean(), policy, history);
    decisions.push(d);
    if (decisions.length > 100) decisions.shift();
    desiredGauge.set(d.desired);
    logger.info(
      { autoscaler: { ...d, metric: Number(d.metric.toFixed(3)), ratio: Number(d.ratio.toFixed(3)) } },
      `autoscaler: ${d.current} → ${d.desired} (${d.reason}; ${d.metric.toFixed(2)} in flight per server, target ${d.target})`,
    );
    if (d.desired !== current)
      void exclusive(`autoscale to ${d.desired}`, () => scaleWebTier(runDir, d.desired, { log: tierLog })).catch(
        (err) => logger.error({ err }, 'autoscaling failed'),
      );
  }, 1000);

  // ---- the control API ----
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  app.get('/status', async () => {
    const state = load();
    return {
      webServers: webServers(state.topology).map((w) => w.name),
      autoscale: state.topology.options.autoscale ?? null,
      metric: window.mean(),
      lastDecision: decisions.at(-1) ?? null,
      operation,
      pendingRestarts: [...pending].map(([name, p]) => ({ name, at: new Date(p.due).toISOString() })),
    };
  });
  app.get('/decisions', async () => decisions);
  const failure = (err: unknown) => ({ error: (err as Error).message });
  app.post('/scale', async (req, reply) => {
    const body = z.object({ web: z.number().int() }).safeParse(req.body);
    if (!body.success) return reply.code(400).send({ error: 'expected {"web": <count>}' });
    // A count set by hand is the operator's: the autoscaler stops until `autoscale --on`.
    const policy = load().topology.options.autoscale;
    if (policy?.enabled) {
      updateState(runDir, (s) => {
        if (s.topology.options.autoscale) s.topology.options.autoscale.enabled = false;
      });
      logger.info({ web: body.data.web }, 'autoscaler paused: the web-server count was set by hand');
    }
    try {
      const webs = await exclusive(`scale to ${body.data.web}`, () =>
        scaleWebTier(runDir, body.data.web, { log: tierLog }),
      );
      return { webServers: webs.map((w) => w.name), autoscalerPaused: Boolean(policy?.enabled) };
    } catch (err) {
      return reply.code(409).send(failure(err));
    }
  });
  app.post('/autoscale', async (req, reply) => {
    const state = load();
    const current = state.topology.options.autoscale;
    const count = webServers(state.topology).length;
    const merged = autoscalePolicy.safeParse({
      ...(current ?? { min: count, max: Math.max(count, 6), target: 2 }),
      ...(req.body as object),
    });
    if (!merged.success) return reply.code(400).send({ error: z.prettifyError(merged.error) });
    if (merged.data.min > merged.data.max) return reply.code(400).send({ error: 'min is above max' });
    updateState(runDir, (s) => {
      s.topology.options.autoscale = merged.data;
    });
    history.length = 0;
    logger.info({ policy: merged.data }, 'autoscaler policy changed');
    return { autoscale: merged.data };
  });
  app.post('/deploy', async (req, reply) => {
    const body = z
      .object({ checkout: z.string().min(1), readySeconds: z.number().positive().max(600).default(60) })
      .safeParse(req.body);
    if (!body.success) return reply.code(400).send({ error: 'expected {"checkout": <dir>}' });
    try {
      return await exclusive('deploy', () =>
        deployWebTier(runDir, body.data.checkout, { log: tierLog, readyMs: body.data.readySeconds * 1000 }),
      );
    } catch (err) {
      logger.error({ err }, 'deploy failed');
      return reply.code(409).send(failure(err));
    }
  });
  app.post('/processes/:name/restart', async (req, reply) => {
    const name = (req.params as { name: string }).name;
    const p = load().processes.find((x) => x.name === name);
    if (!p) return reply.code(404).send({ error: 'no such process' });
    if (isAlive(p.pid)) return reply.code(409).send({ error: `${name} is running` });
    if (restarting.has(name)) return reply.code(409).send({ error: `${name} is starting` });
    await restartNow(name);
    const after = load().processes.find((x) => x.name === name);
    return { restarted: name, pid: after?.pid };
  });
  await app.listen({ host: spec.listen.host, port: spec.listen.port });
  updateState(runDir, (s) => {
    s.phase = 'up';
  });
  logger.info(
    { restartBackoff, autoscale: initial.topology.options.autoscale ?? null },
    `supervising ${initial.processes.length} processes`,
  );

  return {
    async close() {
      clearInterval(watchTimer);
      clearInterval(sampleTimer);
      clearInterval(decideTimer);
      await app.close();
      // Let a change in progress finish its step rather than leave a server half added.
      await Promise.race([queue, sleep(20_000)]);
    },
  };
}
