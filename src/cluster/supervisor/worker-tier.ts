import { writeDynamicTargets } from '../components/prometheus/index.ts';
import { startWeb } from '../components/web/process.ts';
import { isAlive, stopProcess, tcpOpen } from '../process.ts';
import { siteEnv } from '../run/context.ts';
import { loadState, updateState } from '../run/state.ts';
import { workerSpec } from '../topology/presets.ts';
import { maxWorkers, type SpecOf, type Topology } from '../topology/schema.ts';
import { firstDataCenter, planOf, webIndex, workers } from '../topology/select.ts';

type Worker = SpecOf<'worker'>;

export interface WorkerTierOptions {
  log: (msg: string, fields?: Record<string, unknown>) => void;
  /** How long a new worker may take to be ready. */
  readyMs?: number;
  /**
   * How long a leaving worker may take to finish its jobs (SIGTERM: it takes
   * no new one); past it, SIGKILL, and its jobs go to another worker once
   * their locks expire.
   */
  drainMs?: number;
  dataCenter?: string;
}

const dcOf = (t: Topology, o: WorkerTierOptions) => o.dataCenter ?? firstDataCenter(t);

/** The lowest worker slot that no worker of the topology uses and whose address is free. */
async function freeSlot(t: Topology, dataCenter: string): Promise<Worker> {
  const used = new Set(workers(t, dataCenter).map(webIndex));
  for (let i = 1; i <= maxWorkers; i++) {
    if (used.has(i)) continue;
    const spec = workerSpec(planOf(t), dataCenter, i);
    if (!(await tcpOpen(spec.listen.host, spec.listen.port, 200))) return spec;
  }
  throw new Error(`no free slot: at most ${maxWorkers} workers`);
}

/** Starts one more worker (from the topology's checkout) and waits until it is ready: it takes jobs from then on. */
export async function addWorker(runDir: string, o: WorkerTierOptions & { checkout?: string }): Promise<Worker> {
  const state = loadState(runDir);
  const dataCenter = dcOf(state.topology, o);
  const spec = await freeSlot(state.topology, dataCenter);
  o.log(`starting ${spec.name}`, { worker: spec.name, dataCenter });
  const started = await startWeb(spec, runDir, siteEnv(state, dataCenter, 'worker'), {
    checkout: o.checkout ?? state.checkout,
    readyMs: o.readyMs,
    command: 'worker',
    nice: state.topology.options.workerNice,
  });
  const after = updateState(runDir, (s) => {
    const dc = s.topology.dataCenters.find((d) => d.name === dataCenter);
    const last = dc?.processes.findLastIndex((p) => p.kind === 'worker' || p.kind === 'web') ?? -1;
    dc?.processes.splice(last + 1, 0, spec);
    s.processes.push({
      name: spec.name,
      kind: 'worker',
      pid: started.pid,
      log: started.log,
      startTime: started.startTime,
    });
  });
  writeDynamicTargets(after.topology, runDir);
  o.log(`${spec.name} takes jobs`, { worker: spec.name, pid: started.pid });
  return spec;
}

/** Drains a worker (SIGTERM: it finishes its jobs and takes no new one) and waits until it has stopped. */
export async function removeWorker(runDir: string, name: string, o: WorkerTierOptions): Promise<void> {
  const entry = loadState(runDir).processes.find((p) => p.name === name);
  // Out of the state first: the supervisor must not start it again once it stops.
  const after = updateState(runDir, (s) => {
    for (const dc of s.topology.dataCenters) dc.processes = dc.processes.filter((p) => p.name !== name);
    s.processes = s.processes.filter((p) => p.name !== name);
  });
  writeDynamicTargets(after.topology, runDir);
  const started = Date.now();
  if (entry && isAlive(entry.pid)) await stopProcess(entry.pid, o.drainMs ?? 120_000);
  o.log(`${name} drained and stopped in ${Date.now() - started} ms`, { worker: name });
}

/** Starts or drains workers until there are `count` (0 allowed: jobs then wait, and uploads are still accepted). */
export async function scaleWorkerTier(runDir: string, count: number, o: WorkerTierOptions): Promise<Worker[]> {
  if (!Number.isInteger(count) || count < 0 || count > maxWorkers) throw new Error(`workers: 0 to ${maxWorkers}`);
  for (;;) {
    const t = loadState(runDir).topology;
    const list = workers(t, dcOf(t, o));
    if (list.length === count) return list;
    if (list.length < count) await addWorker(runDir, o);
    else {
      // Several at once: each drains while the next is told to.
      const leaving = [...list].sort((a, b) => webIndex(b) - webIndex(a)).slice(0, list.length - count);
      await Promise.all(leaving.map((w) => removeWorker(runDir, w.name, o)));
    }
  }
}

/**
 * The workers' part of a rolling deploy: each worker, one at a time, is
 * replaced by one running `checkout` (the new one takes jobs before the old
 * one drains), so jobs keep running throughout. Returns the replacements.
 */
export async function deployWorkerTier(
  runDir: string,
  checkout: string,
  o: WorkerTierOptions,
): Promise<{ old: string; new: string }[]> {
  const t = loadState(runDir).topology;
  const replaced: { old: string; new: string }[] = [];
  for (const old of workers(t, dcOf(t, o))) {
    const added = await addWorker(runDir, { ...o, checkout });
    await removeWorker(runDir, old.name, o);
    replaced.push({ old: old.name, new: added.name });
  }
  return replaced;
}
