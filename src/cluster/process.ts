import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, existsSync, openSync } from 'node:fs';
import { createConnection } from 'node:net';
import { isAlive, isSameProcess, startTimeOf } from '../platform/pid.ts';

export { isAlive, isSameProcess, startTimeOf };

export interface StartedProcess {
  pid: number;
  log: string;
  /** Its start time (see startTimeOf): a kill checks that the PID is still this process. */
  startTime?: number;
}

export interface SpawnOptions {
  command: string;
  args: string[];
  log: string;
  env?: Record<string, string>;
  /** Run as this system user (PostgreSQL and Patroni refuse root). */
  user?: string;
  cwd?: string;
  /** Its CPU priority (nice 0–19): a background job yields the CPU to the site's requests. */
  nice?: number;
}

/**
 * Every PID this process started. A launcher whose health wait fails stops
 * these too, not only the processes it had recorded as started.
 */
export const spawned = new Set<number>();
const journal = new AsyncLocalStorage<number[]>();

/**
 * Runs `fn` with `pids` as its journal: every process `startProcess` spawns
 * within it (its async calls included, and no other caller's) is pushed
 * there, so that a start that fails can stop what it left running.
 */
export function withSpawnJournal<T>(pids: number[], fn: () => Promise<T>): Promise<T> {
  return journal.run(pids, fn);
}

/** How each process this one started ended: `exits.on('exit', (pid, code, signal) => …)`. */
export const exits = new EventEmitter<{ exit: [pid: number, code: number | null, signal: NodeJS.Signals | null] }>();

const baseEnv = { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', LANG: 'C.UTF-8' };

/**
 * The environment of the control plane's own Node processes (the supervisor, the dashboard): a
 * heap sized to their job, as the web servers' is (V8 would size it to the machine: 186 MB of heap
 * committed for 76 MB used, in the supervisor of a loaded `stateless`), and two malloc arenas.
 */
export const controlPlaneNodeEnv = {
  NODE_OPTIONS: '--max-old-space-size=96 --max-semi-space-size=4',
  MALLOC_ARENA_MAX: '2',
};

/**
 * Starts a server in its own process group, detached, with output appended to
 * `log`. The environment is clean apart from `env` (an inherited PGPASSWORD,
 * for one, breaks pg_rewind). With `user`, setpriv drops privileges and execs,
 * so the PID returned is the server's own.
 */
export function startProcess(opts: SpawnOptions): StartedProcess {
  const out = openSync(opts.log, 'a');
  const [userCommand, userArgs] = opts.user
    ? ['setpriv', [`--reuid=${opts.user}`, `--regid=${opts.user}`, '--init-groups', opts.command, ...opts.args]]
    : [opts.command, opts.args];
  // nice execs the command: the PID (and its start time) stay the process's own.
  const [command, args] = opts.nice
    ? ['/usr/bin/nice', ['-n', String(opts.nice), userCommand, ...userArgs]]
    : [userCommand, userArgs];
  const child = spawn(command, args, {
    env: { ...baseEnv, HOME: opts.cwd ?? '/tmp', ...opts.env },
    cwd: opts.cwd,
    detached: true,
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  child.unref();
  if (!child.pid) throw new Error(`could not start ${opts.command}`);
  const pid = child.pid;
  child.on('exit', (code, signal) => exits.emit('exit', pid, code, signal));
  spawned.add(pid);
  journal.getStore()?.push(pid);
  return { pid: child.pid, log: opts.log, startTime: startTimeOf(pid) ?? undefined };
}

/** SIGTERM (or `signal`), then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopProcess(pid: number, graceMs = 10_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!isAlive(pid)) return;
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        return;
      }
      await waitUntil(() => !isAlive(pid), 5000).catch(() => {});
      return;
    }
    await sleep(50);
  }
}

export function killHard(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true; throws with `what` after `ms`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  ms: number,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

export function tcpOpen(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function httpStatus(
  url: string,
  timeoutMs = 1000,
  method = 'GET',
  headers: Record<string, string> = {},
): Promise<number> {
  try {
    const res = await fetch(url, { method, headers, signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** Fails with the package to install when a server's binaries are missing. */
export function requireBinaries(binaries: string[], packages: string): void {
  const missing = binaries.filter((b) => !existsSync(b));
  if (missing.length > 0) {
    throw new Error(`missing ${missing.join(', ')}: run "scaleout setup" (or apt-get install -y ${packages})`);
  }
}
