import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Component } from '../components/component.ts';
import { componentOf, components } from '../components/registry.ts';
import { projectRoot } from '../components/web/process.ts';
import {
  isAlive,
  isSameProcess,
  type StartedProcess,
  sleep,
  spawned,
  startTimeOf,
  stopProcess,
  tcpOpen,
  withSpawnJournal,
} from '../process.ts';
import type { ProcessSpec, Topology } from '../topology/schema.ts';
import { allProcesses, dataCenterOf, processesIn, publicUrl } from '../topology/select.ts';
import { contextFor } from './context.ts';
import { keepPrivate, makeRunDir, writeControlToken } from './private.ts';
import {
  type ClusterState,
  loadState,
  type RunningProcess,
  readState,
  stateOf,
  straysOf,
  updateState,
  writeState,
} from './state.ts';

/**
 * The orchestrator: `up`, `down` and `restart` of a topology, as loops over
 * the component registry. It never names a kind of process: each component
 * says when it starts (its stage), in which batches, how it is healthy, what
 * it provides to the processes after it, and what it leaves behind.
 */
export interface UpOptions {
  runRoot: string;
  log?: (line: string) => void;
  /** Extra environment for the web servers (tests raise rate limits, for one). */
  webEnv?: Record<string, string>;
}

const secret = (bytes = 12) => randomBytes(bytes).toString('hex');

/** The process that runs the start itself (the supervisor), if the topology has one. */
const launcherOf = (t: Topology) => allProcesses(t).find((p) => componentOf(p).launch);

/**
 * Renders and starts every server of a topology, in stage order, and waits
 * until each is healthy. A topology with a launcher (its supervisor) is
 * started by it, so that every process is its child; this follows its progress.
 * On any failure what was started is stopped.
 */
export async function up(topology: Topology, opts: UpOptions): Promise<ClusterState> {
  const log = opts.log ?? (() => {});
  const runDir = path.join(opts.runRoot, topology.name);
  const previous = stateOf(opts.runRoot, topology.name);
  if (previous?.processes.some((p) => isAlive(p.pid))) {
    throw new Error(`topology "${topology.name}" is already running: "scaleout down --name ${topology.name}" first`);
  }
  const busy = (
    await Promise.all(
      allProcesses(topology)
        .flatMap((p) => componentOf(p).addresses(p))
        .map(async (a) => ((await tcpOpen(a.host, a.port, 300)) ? `${a.host}:${a.port}` : null)),
    )
  ).filter(Boolean);
  if (busy.length > 0) {
    throw new Error(`already in use: ${busy.join(', ')} (another topology? give this one another --name or --octet)`);
  }
  rmSync(runDir, { recursive: true, force: true });
  // Every file of the run is root's alone (the state, the servers' configs, their data): see private.ts.
  keepPrivate();
  mkdirSync(opts.runRoot, { recursive: true });
  chmodSync(opts.runRoot, 0o755);
  makeRunDir(runDir);
  mkdirSync(path.join(runDir, 'logs'), { mode: 0o700 });
  const state: ClusterState = {
    topology,
    runDir,
    publicUrl: publicUrl(topology),
    secrets: {
      superuser: secret(),
      replication: secret(),
      rewind: secret(),
      app: secret(),
      site: randomBytes(32).toString('base64url'),
      redis: secret(18),
      sentinel: secret(18),
      patroniRest: secret(18),
      etcd: secret(18),
      edge: secret(18),
      control: randomBytes(24).toString('base64url'),
      shardMap: secret(18),
    },
    processes: [],
    startedAt: new Date().toISOString(),
    checkout: projectRoot,
    webEnv: opts.webEnv ?? {},
    phase: 'starting',
  };
  writeState(state);
  writeControlToken(state);
  const launcher = launcherOf(topology);
  const launch = launcher && componentOf(launcher).launch;
  if (!launcher || !launch) return startAll(state, log);
  const started = launch(launcher, runDir);
  const progress = path.join(runDir, 'logs', 'up.log');
  let shown = 0;
  const follow = () => {
    if (!existsSync(progress)) return;
    const lines = readFileSync(progress, 'utf8').split('\n').slice(0, -1);
    for (const line of lines.slice(shown)) log(line);
    shown = lines.length;
  };
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    await sleep(200);
    follow();
    const now = readState(runDir);
    if (now?.phase === 'up') return now;
    if (now?.phase === 'failed') throw new Error(now.error ?? 'start failed');
    if (!isAlive(started.pid)) throw new Error(`${launcher.name} exited while starting (see ${started.log})`);
    if (Date.now() > deadline) {
      await stopProcess(started.pid, 30_000);
      throw new Error('the topology did not start within 15 min');
    }
  }
}

/** Each stage's kinds, in stage order, then registry order. */
function stages(): Component[][] {
  const byStage = new Map<number, Component[]>();
  for (const c of components()) byStage.set(c.stage, [...(byStage.get(c.stage) ?? []), c]);
  return [...byStage].sort(([a], [b]) => a - b).map(([, cs]) => cs);
}

/** Records a process that started in the run's state file, and says so. */
function recordStarted(
  runDir: string,
  spec: ProcessSpec,
  p: StartedProcess,
  log: (line: string) => void,
): RunningProcess {
  const entry: RunningProcess = { name: spec.name, kind: spec.kind, pid: p.pid, log: p.log, startTime: p.startTime };
  updateState(runDir, (s) => {
    s.processes = [...s.processes.filter((x) => x.name !== spec.name), entry];
  });
  log(`  ${spec.name.padEnd(18)} pid ${p.pid}`);
  return entry;
}

/**
 * Starts `processes` (of one scope) of one stage's kinds, in the batches
 * their component gives, then waits until they work together (`ready`).
 */
async function startStage(
  state: ClusterState,
  stage: Component[],
  dataCenter: string | null,
  processes: ProcessSpec[],
  o: {
    log: (line: string) => void;
    record: (spec: ProcessSpec, p: StartedProcess) => void;
    self?: StartedProcess & { name: string };
  },
): Promise<void> {
  for (const c of stage) {
    const specs = processes.filter((p) => p.kind === c.kind);
    if (specs.length === 0) continue;
    const ctx = contextFor(state, dataCenter, { log: o.log });
    const where = dataCenter ? ` in ${dataCenter}` : '';
    o.log(`starting ${specs.length} × ${c.kind}${where}: ${specs.map((s) => c.address(s)).join(' ')}`);
    for (const batch of c.batches ? c.batches(specs) : specs.map((s) => [s])) {
      const results = await Promise.allSettled(
        batch.map(async (spec) => {
          if (o.self?.name === spec.name) return o.record(spec, o.self);
          o.record(spec, await c.start(spec, ctx));
        }),
      );
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
    }
    await c.ready?.(specs, ctx);
  }
}

/**
 * Starts processes added to a running topology (already in its state's
 * topology, in `dataCenter`), in stage order as `up` would, recording each
 * in the state as it starts. On failure it stops what it started and throws.
 */
export async function startAdded(
  runDir: string,
  dataCenter: string,
  names: string[],
  log: (line: string) => void,
): Promise<void> {
  const state = loadState(runDir);
  const wanted = new Set(names);
  const processes = processesIn(state.topology, { dataCenter }).filter((p) => wanted.has(p.name));
  const before = new Set(spawned);
  const record = (spec: ProcessSpec, p: StartedProcess) => void recordStarted(runDir, spec, p, log);
  try {
    for (const stage of stages()) await startStage(state, stage, dataCenter, processes, { log, record });
  } catch (err) {
    log(`start failed: ${(err as Error).message}; stopping what was started`);
    // Out of the state first, so that the supervisor does not start them again as they stop.
    updateState(runDir, (s) => {
      s.processes = s.processes.filter((p) => !wanted.has(p.name));
    });
    // Everything it spawned, recorded or not (a process that never became healthy), the last first.
    for (const pid of [...spawned].filter((p) => !before.has(p)).reverse()) await stopProcess(pid, 15_000);
    for (const spec of processes) {
      for (const l of componentOf(spec).leftovers?.(spec, state) ?? []) await stopProcess(l.pid, 15_000, l.signal);
    }
    throw err;
  }
}

/**
 * Starts every process of the topology in `state`, stage by stage: in each
 * stage, each scope (the global one, then each data center) starts its
 * processes of that stage's kinds in the batches their component gives,
 * then waits until they work together (`ready`). On failure it stops what it started.
 * `self`: run by the launcher (the supervisor), which records itself instead of starting one.
 */
export async function startAll(
  state: ClusterState,
  log: (line: string) => void,
  self?: StartedProcess & { name: string },
): Promise<ClusterState> {
  const { topology } = state;
  const record = (spec: ProcessSpec, p: StartedProcess) => {
    state.processes.push(recordStarted(state.runDir, spec, p, log));
  };
  const scopes: (string | null)[] = [null, ...topology.dataCenters.map((d) => d.name)];
  try {
    for (const stage of stages()) {
      for (const dataCenter of scopes) {
        const processes = dataCenter ? processesIn(topology, { dataCenter }) : topology.global.processes;
        await startStage(state, stage, dataCenter, processes, { log, record, self });
      }
    }
    // A launcher says "up" itself, once its control API answers.
    if (!self) {
      updateState(state.runDir, (s) => {
        s.phase = 'up';
      });
    }
    return loadState(state.runDir);
  } catch (err) {
    log(`start failed: ${(err as Error).message}; stopping what was started`);
    await down(state, { purge: false });
    // Also what was spawned but never became healthy, so never recorded.
    const recorded = new Set(state.processes.map((p) => p.pid));
    for (const pid of spawned) if (!recorded.has(pid)) await stopProcess(pid, 5000);
    updateState(state.runDir, (s) => {
      s.phase = 'failed';
      s.error = (err as Error).message;
    });
    throw err;
  }
}

/** What the topology's processes left running after they died (Patroni's postmaster): each component knows its own. */
export function leftovers(state: ClusterState): { name: string; pid: number; signal: NodeJS.Signals }[] {
  return [
    ...allProcesses(state.topology).flatMap((p) => componentOf(p).leftovers?.(p, state) ?? []),
    ...straysOf(state, isSameProcess),
  ];
}

/**
 * The order `down` stops processes in: the reverse of the start order, by
 * stage. A process started again or added later is listed last in the state
 * file, and must still not be stopped before what depends on it (a data
 * center's Patroni before the witness, which would see it gone and fail over
 * while the topology is being stopped).
 */
export const stopOrder = <P extends { kind: string }>(processes: P[]): P[] =>
  [...processes].reverse().sort((a, b) => componentOf(b).stage - componentOf(a).stage);

/** Stops every process by PID, the launcher first, then the rest in `stopOrder`, then their leftovers. */
export async function down(state: ClusterState, opts: { purge: boolean }): Promise<void> {
  // Another process (the supervisor, the dashboard) may have restarted some: the state file has the latest PIDs.
  const latest = () => Object.assign(state, readState(state.runDir) ?? {});
  latest();
  // The launcher first, so that nothing is started again; it finishes the change it was making
  // (a web server it was adding is then in the state file, read again below).
  // Only a PID that is still the process recorded (same start time) is signalled: PIDs are reused.
  for (const p of state.processes.filter((x) => componentOf(x).launch && isSameProcess(x)))
    await stopProcess(p.pid, 30_000);
  latest();
  for (const p of stopOrder(state.processes)) if (isSameProcess(p)) await stopProcess(p.pid, 15_000);
  for (const l of leftovers(state)) await stopProcess(l.pid, 15_000, l.signal);
  if (opts.purge) rmSync(state.runDir, { recursive: true, force: true });
}

/**
 * Starts one process of a running topology again, from its spec, with the
 * configuration and data it had, after stopping what its last run left
 * (a Patroni node rejoins as a replica, rewinding if it was the old leader).
 * `counted`: the supervisor's restart, counted in `restarts`.
 */
export async function restart(
  state: ClusterState,
  name: string,
  opts: { counted?: boolean } = {},
): Promise<RunningProcess> {
  // The topology may have changed since the caller read it (scaling, deploys, other restarts).
  Object.assign(state, loadState(state.runDir));
  const spec = allProcesses(state.topology).find((p) => p.name === name);
  if (!spec) throw new Error(`no process named "${name}"`);
  const old = state.processes.find((p) => p.name === name);
  if (old && isAlive(old.pid)) throw new Error(`${name} is still running (pid ${old.pid})`);
  const c = componentOf(spec);
  for (const l of c.leftovers?.(spec, state) ?? []) await stopProcess(l.pid, 15_000, l.signal);
  const pids: number[] = [];
  let started: StartedProcess;
  try {
    started = await withSpawnJournal(pids, () =>
      c.start(spec, contextFor(state, dataCenterOf(state.topology, name), { restarting: true })),
    );
  } catch (err) {
    // What the start spawned is recorded nowhere else when it fails (a Redis replica that did not link up
    // in time, and may yet): a stray, which `down` stops with the rest, so it cannot outlive the topology.
    if (pids.length > 0)
      updateState(state.runDir, (s) => {
        s.strays = [
          ...(s.strays ?? []).filter((x) => isSameProcess(x)),
          ...pids.map((pid) => ({ name, pid, startTime: startTimeOf(pid) ?? undefined })),
        ];
      });
    throw err;
  }
  let entry: RunningProcess = {
    name,
    kind: spec.kind,
    pid: started.pid,
    log: started.log,
    startTime: started.startTime,
  };
  const latest = updateState(state.runDir, (s) => {
    const before = s.processes.find((p) => p.name === name);
    const restarts = (before?.restarts ?? 0) + (opts.counted ? 1 : 0);
    entry = { ...entry, restarts: restarts || undefined, lastExit: before?.lastExit };
    s.processes = [...s.processes.filter((p) => p.name !== name), entry];
  });
  state.processes = latest.processes;
  return entry;
}
