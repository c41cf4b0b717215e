import { appendFileSync } from 'node:fs';
import path from 'node:path';
import client from 'prom-client';
import { createLogger } from '../../platform/observability/logger.ts';
import { componentOf } from '../components/registry.ts';
import { sleep, startTimeOf } from '../process.ts';
import { startAll } from '../run/orchestrator.ts';
import { loadState, updateState } from '../run/state.ts';
import { allProcesses, firstDataCenter, webServers } from '../topology/select.ts';
import { buildControlApi } from './api.ts';
import { requestsInFlight, startController, webTier } from './controllers.ts';
import { restartBackoff, watchRestarts } from './restarts.ts';
import { scaleWebTier } from './web-tier.ts';

export { backoffDelay, restartBackoff } from './restarts.ts';

/** The process of the topology that runs it (the supervisor's own spec). */
function selfOf(runDir: string) {
  const state = loadState(runDir);
  const spec = allProcesses(state.topology).find((p) => componentOf(p).launch);
  if (!spec) throw new Error('this topology has no supervisor');
  return { state, spec };
}

/**
 * `up` of a supervised topology, run by the supervisor: it starts every
 * process itself (so each is its child, and it sees how each one ends),
 * writing progress to logs/up.log for the `up` that waits on it. On failure
 * the state says so and the process exits.
 */
export async function launchTopology(runDir: string): Promise<void> {
  const { state, spec } = selfOf(runDir);
  const progress = path.join(runDir, 'logs', 'up.log');
  try {
    await startAll(state, (line) => appendFileSync(progress, `${line}\n`), {
      name: spec.name,
      pid: process.pid,
      startTime: startTimeOf(process.pid) ?? undefined,
      log: path.join(runDir, 'logs', `${spec.name}.log`),
    });
  } catch (err) {
    process.stderr.write(`start failed: ${(err as Error).stack}\n`);
    process.exit(1);
  }
}

/**
 * The supervisor of one running topology (`scaleout supervise`, started by
 * `up`), a composition of three parts: restarts (every other process kept
 * running), controllers (the web tier's autoscaler) and the control API that
 * carries out `scale`, `autoscale`, `deploy` and restarts, one change of the
 * tier at a time.
 */
export async function runSupervisor(runDir: string): Promise<{ close(): Promise<void> }> {
  const { state: initial, spec } = selfOf(runDir);
  const logger = createLogger('info', { service: 'supervisor', topology: initial.topology.name });
  const dataCenter = firstDataCenter(initial.topology);

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
      this.set(webServers(loadState(runDir).topology).length);
    },
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

  const restarts = watchRestarts(runDir, logger, restartsTotal);
  const autoscaler = startController(
    webTier(dataCenter, (count) =>
      exclusive(`autoscale to ${count}`, () => scaleWebTier(runDir, count, { log: tierLog })),
    ),
    requestsInFlight(dataCenter),
    { runDir, logger, registry, busy: () => operation !== null },
  );
  const app = buildControlApi({
    runDir,
    registry,
    restarts,
    autoscaler,
    exclusive,
    operation: () => operation,
    tierLog,
    log: (fields, msg) => logger.info(fields, msg),
  });
  if (spec.kind !== 'supervisor') throw new Error(`${spec.name} is not a supervisor`);
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
      restarts.stop();
      autoscaler.stop();
      await app.close();
      // Let a change in progress finish its step rather than leave a server half added.
      await Promise.race([queue, sleep(20_000)]);
    },
  };
}
