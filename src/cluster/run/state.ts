import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DbSecrets } from '../components/patroni/cluster.ts';
import type { DataCenterRoles } from '../datacenter/roles.ts';
import { isAlive } from '../process.ts';
import type { ProcessKind, Topology } from '../topology/schema.ts';
import { parseTopology } from '../topology/select.ts';

/** A data-center failover or switchover, as the witness made it. */
export interface DataCenterEvent {
  kind: 'failover' | 'switchover';
  from: string;
  to: string;
  /** automatic (the witness saw the primary data center gone), or by hand (`scaleout dc …`). */
  reason: string;
  at: string;
  /** From the decision until the new primary data center's proxy had a primary (ms). */
  promotedMs?: number;
  /** Whether the old primary data center's cluster was rewritten to a standby at once (its etcd answered). */
  fencedAtOnce?: boolean;
  /** A switchover's demotion token: the old primary's last WAL position, replayed before the promotion. */
  lsn?: string;
}

export interface ProcessExit {
  at: string;
  code: number | null;
  signal: string | null;
}

export interface RunningProcess {
  name: string;
  kind: ProcessKind;
  pid: number;
  log: string;
  /** Its start time: the PID names this process only while it matches (PIDs are reused). */
  startTime?: number;
  /** Times the supervisor has started it again. */
  restarts?: number;
  /** How its last run ended, as the supervisor saw it (code and signal are null when it was not the parent). */
  lastExit?: ProcessExit;
}

/** How a process ended, in a word or two: "SIGKILL", "code 1", "unknown". */
export const howExited = (e: ProcessExit): string => e.signal ?? (e.code !== null ? `code ${e.code}` : 'unknown');

/** The site's own secrets, beside the database's: every web server of the site shares them. */
export interface SiteSecrets extends DbSecrets {
  /** Signs the forms' CSRF tokens and the read-your-writes cookie. */
  site: string;
  /** Every Redis server's password (requirepass, masterauth). */
  redis: string;
  /** The Sentinels' password (their requirepass, and what they send each other). */
  sentinel: string;
  /** The edge's purge token and its admin CLI's secret (varnishadm -S). */
  edge: string;
  /** The control plane's token (the supervisor's API, the dashboard), also in `control.token`. */
  control: string;
  /** etcd's read-only user of the shard map (sharded): the web servers' and workers'. */
  shardMap?: string;
}

/** What `up` leaves in the run directory, so that status, logs and down can find everything by PID. */
export interface ClusterState {
  topology: Topology;
  runDir: string;
  publicUrl: string;
  secrets: SiteSecrets;
  processes: RunningProcess[];
  startedAt: string;
  /** The checkout the web servers run (the project's own, until a deploy names another). */
  checkout?: string;
  /** Settings for every web server beyond what the providers give (tests raise rate limits, for one), as env. */
  webEnv?: Record<string, string>;
  /** Which data center holds the primary and which are fenced, once a data-center failover or switchover changed it. */
  dataCenterRoles?: DataCenterRoles;
  /** The data-center failovers and switchovers of the run, the last 20. */
  dataCenterEvents?: DataCenterEvent[];
  /**
   * Asked for by `scaleout dc sync on`: the primary's commits wait for the other data center (while it
   * streams; the witness turns it off after the standby has not streamed for its failover delay, and on again).
   */
  synchronousAcross?: boolean;
  /**
   * Processes a restart spawned whose start then failed (a Redis replica that did not link up in time):
   * recorded nowhere else, they may still come good and serve (their port is theirs), so they are left
   * running, and `down` stops them with the rest (`leftovers`).
   */
  strays?: { name: string; pid: number; startTime?: number }[];
  /** Where `up` is: starting, up, or failed (with `error`). */
  phase?: 'starting' | 'up' | 'failed';
  error?: string;
}

const stateFile = (runDir: string) => path.join(runDir, 'state.json');
const lockFile = (runDir: string) => path.join(runDir, 'state.lock');

/**
 * The state store of one run directory: one read, and one locked update. The
 * supervisor, `up`, `down`, `restart` and the web tier's changes all write
 * through `update`, which holds an exclusive lock file (O_EXCL) for its
 * read-modify-write, so no two writers interleave; the file itself is
 * replaced by rename, so a reader never sees half of it. When a supervisor
 * runs it is the only writer: the CLI and the dashboard go through its API.
 */
export function readState(runDir: string): ClusterState | null {
  const file = stateFile(runDir);
  if (!existsSync(file)) return null;
  const state = JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
  state.topology = parseTopology(state.topology);
  return state;
}

/** The state of the topology in `runDir`, which must exist. */
export function loadState(runDir: string): ClusterState {
  const state = readState(runDir);
  if (!state) throw new Error(`no topology in ${runDir}`);
  return state;
}

/** The state of topology `name` under `runRoot`, or null. */
export const stateOf = (runRoot: string, name: string): ClusterState | null => readState(path.join(runRoot, name));

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Runs `fn` holding the run directory's lock; a lock whose holder died is taken over. */
function withLock<T>(runDir: string, fn: () => T): T {
  const file = lockFile(runDir);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(file, 'utf8').trim() || 'NaN');
      if (Number.isInteger(holder) && holder > 0 && !isAlive(holder)) rmSync(file, { force: true });
      else if (Date.now() > deadline) throw new Error(`the state of ${runDir} is locked by pid ${holder}`);
      else Atomics.wait(pause, 0, 0, 5);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(file, { force: true });
  }
}

/** Writes a whole new state (`up`, before anything runs). */
export function writeState(state: ClusterState): void {
  withLock(state.runDir, () => save(state));
}

const save = (state: ClusterState) => {
  const file = stateFile(state.runDir);
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
};

/** Changes the state as it is now on disk, under the lock, and returns the new state. */
export function updateState(runDir: string, change: (state: ClusterState) => void): ClusterState {
  return withLock(runDir, () => {
    const state = loadState(runDir);
    change(state);
    save(state);
    return state;
  });
}

/** The strays still running (same PID and start time), as leftovers to stop; with `inDataCenter`, only those it accepts. */
export function straysOf(
  state: Pick<ClusterState, 'strays'>,
  alive: (x: { pid: number; startTime?: number }) => boolean,
  inDataCenter: (name: string) => boolean = () => true,
): { name: string; pid: number; signal: NodeJS.Signals }[] {
  return (state.strays ?? [])
    .filter((x) => inDataCenter(x.name) && alive(x))
    .map((x) => ({ name: `${x.name} (a start that failed)`, pid: x.pid, signal: 'SIGTERM' as NodeJS.Signals }));
}
