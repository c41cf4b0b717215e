import { appendFileSync } from 'node:fs';
import path from 'node:path';
import client from 'prom-client';
import { createLogger } from '../../platform/observability/logger.ts';
import { componentOf } from '../components/registry.ts';
import { sleep, startTimeOf } from '../process.ts';
import { openSiteQueue } from '../run/jobs.ts';
import { startAll } from '../run/orchestrator.ts';
import { loadState, updateState } from '../run/state.ts';
import { allProcesses, firstDataCenter, webServers, workers } from '../topology/select.ts';
import { buildControlApi } from './api.ts';
import { queueDepth, requestsInFlight, startController, webTier, workerTier } from './controllers.ts';
import { restartBackoff, watchRestarts } from './restarts.ts';
import { startShardBalancer } from './shard-balancer.ts';
import { scaleWebTier } from './web-tier.ts';
import { scaleWorkerTier } from './worker-tier.ts';

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
  // Its own memory, CPU and event loop, as every Node process of the topology reports them.
  client.collectDefaultMetrics({ register: registry });
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

  new client.Gauge({
    name: 'scaleout_workers',
    help: 'Workers of the topology',
    registers: [registry],
    collect() {
      this.set(workers(loadState(runDir).topology).length);
    },
  });

  // ---- one change of each tier at a time (a worker's long drain does not hold up the web tier) ----
  const webLane = lane();
  const workerLane = lane();
  /** Changes of the data tier (a shard cluster added). */
  const dataLane = lane();
  const tierLog = (msg: string, fields: Record<string, unknown> = {}) => logger.info(fields, msg);

  const restarts = watchRestarts(runDir, logger, restartsTotal);
  const autoscaler = startController(
    webTier(dataCenter, (count) =>
      webLane.exclusive(`autoscale to ${count}`, () => scaleWebTier(runDir, count, { log: tierLog })),
    ),
    requestsInFlight(dataCenter),
    { runDir, logger, registry, busy: () => webLane.operation() !== null },
  );
  // The worker tier, where the topology has one: scaled by the depth of the shared queue.
  const jobs = openSiteQueue(initial, dataCenter);
  const workerAutoscaler = jobs
    ? startController(
        workerTier(dataCenter, (count) =>
          workerLane.exclusive(`autoscale workers to ${count}`, () => scaleWorkerTier(runDir, count, { log: tierLog })),
        ),
        queueDepth(dataCenter, () => jobs.depth()),
        { runDir, logger, registry, busy: () => workerLane.operation() !== null },
      )
    : undefined;
  // Where the topology is sharded: hot logical shards moved on their own, when its policy says so.
  const shardBalancer = startShardBalancer({
    runDir,
    logger,
    registry,
    exclusiveData: dataLane.exclusive,
    busy: () => dataLane.operation() !== null,
  });
  const app = buildControlApi({
    shardBalancer,
    runDir,
    registry,
    restarts,
    autoscaler,
    workerAutoscaler,
    exclusive: webLane.exclusive,
    exclusiveWorkers: workerLane.exclusive,
    exclusiveData: dataLane.exclusive,
    operation: () => webLane.operation() ?? workerLane.operation() ?? dataLane.operation(),
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
      workerAutoscaler?.stop();
      shardBalancer?.stop();
      await app.close();
      // Let a change in progress finish its step rather than leave a server half added.
      await Promise.race([Promise.all([webLane.idle(), workerLane.idle(), dataLane.idle()]), sleep(20_000)]);
      await jobs?.close();
    },
  };
}

/** Changes that run one at a time, in order; `operation` names the one running. */
function lane() {
  let operation: string | null = null;
  let tail: Promise<unknown> = Promise.resolve();
  return {
    operation: () => operation,
    idle: () => tail,
    exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
      const run = tail.then(async () => {
        operation = name;
        try {
          return await fn();
        } finally {
          operation = null;
        }
      });
      tail = run.catch(() => {});
      return run;
    },
  };
}
