import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { componentOf } from '../components/registry.ts';
import { exits, isAlive, spawned } from '../process.ts';
import { restart } from '../run/orchestrator.ts';
import { howExited, loadState, type ProcessExit, updateState } from '../run/state.ts';

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

export interface Restarts {
  /** Starts `name` again now (the API's restart button); throws if it does not start. */
  restartNow(name: string): Promise<void>;
  isRestarting(name: string): boolean;
  pending(): { name: string; at: string }[];
  stop(): void;
}

/**
 * Watches every process of the topology (but the launcher, itself) twice a
 * second; a death is recorded with how it ended (its exit code or signal:
 * the supervisor is the parent) and the process is started again after its back-off.
 */
export function watchRestarts(runDir: string, logger: Logger, restartsTotal: Counter): Restarts {
  const exitOf = new Map<number, { code: number | null; signal: string | null }>();
  exits.on('exit', (pid, code, signal) => exitOf.set(pid, { code, signal }));
  const pending = new Map<string, { pid: number; due: number }>();
  // A child of ours that is a zombie reads as dead before its exit event has
  // been handled: its death is recorded at a later tick, with its exit status
  // (or without it, after exitWaitMs).
  const deadSince = new Map<number, number>();
  const exitWaitMs = 3000;
  const crashes = new Map<string, { count: number; startedAt: number }>();
  const restarting = new Set<string>();
  const startedAt = Date.now();

  const restartNow = async (name: string) => {
    restarting.add(name);
    pending.delete(name);
    try {
      const entry = await restart(loadState(runDir), name, { counted: true });
      restartsTotal.inc({ process: name, kind: entry.kind });
      const c = crashes.get(name);
      if (c) c.startedAt = Date.now();
      logger.warn({ process: name, pid: entry.pid, restarts: entry.restarts }, `${name} restarted`);
    } catch (err) {
      const c = crashes.get(name) ?? { count: 0, startedAt: Date.now() };
      c.count++;
      crashes.set(name, c);
      const delay = backoffDelay(c.count);
      const current = loadState(runDir).processes.find((p) => p.name === name);
      if (current) pending.set(name, { pid: current.pid, due: Date.now() + delay });
      logger.error(
        { err, process: name, retryInMs: delay },
        `${name} did not start again; next try in ${delay / 1000} s`,
      );
      throw err;
    } finally {
      restarting.delete(name);
    }
  };

  const watch = () => {
    const state = loadState(runDir);
    const now = Date.now();
    for (const p of state.processes) {
      if (componentOf(p).launch || restarting.has(p.name)) continue;
      if (isAlive(p.pid)) {
        pending.delete(p.name);
        continue;
      }
      const waiting = pending.get(p.name);
      if (waiting?.pid === p.pid) {
        if (now >= waiting.due) void restartNow(p.name).catch(() => {});
        continue;
      }
      // A death not seen before.
      const code = exitOf.get(p.pid);
      if (!code && spawned.has(p.pid) && now - (deadSince.get(p.pid) ?? now) < exitWaitMs) {
        if (!deadSince.has(p.pid)) deadSince.set(p.pid, now);
        continue;
      }
      deadSince.delete(p.pid);
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
  const timer = setInterval(() => {
    try {
      watch();
    } catch (err) {
      logger.error({ err }, 'watch failed');
    }
  }, 500);

  return {
    restartNow,
    isRestarting: (name) => restarting.has(name),
    pending: () => [...pending].map(([name, p]) => ({ name, at: new Date(p.due).toISOString() })),
    stop: () => clearInterval(timer),
  };
}
