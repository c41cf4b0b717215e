import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { loadTestLimits, renderEnv } from '../config.ts';

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers 200, or throws after `ms`. */
export async function waitHealthy(url: string, ms = 30_000, child?: ChildProcess): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (child && child.exitCode !== null) throw new Error(`${url}: process exited with ${child.exitCode}`);
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not become healthy within ${ms} ms`);
}

/** Starts a node process; stop it with `stop`, which signals its PID and waits. */
export function startNode(args: string[], env: Record<string, string> = {}): ChildProcess & { stop(): Promise<void> } {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return Object.assign(child, {
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      }),
  });
}

/** Web servers under a benchmark: quiet logs, and limits raised for seeding. */
export const benchWebEnv = { ...renderEnv({ logLevel: 'warn' }), ...loadTestLimits };
