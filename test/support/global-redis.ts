import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { freePort } from '../../src/bench/processes.ts';
import { redisCommand } from '../../src/cluster/components/redis/server.ts';
import { startProcess, stopProcess, waitUntil } from '../../src/cluster/process.ts';
import { randomLoopbackHost } from './addresses.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    redis: { host: string; port: number };
  }
}

/**
 * One real Redis master with a replica for the whole test run (so `WAIT 1`
 * has a replica to wait for), on free ports of its own 127.x address. Test
 * files use their own key prefixes.
 */
export default async function setup(project: TestProject) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'scaleout-redis-'));
  const host = randomLoopbackHost();
  const [port, replicaPort] = [await freePort(), await freePort()];
  const master = startTestRedis(dir, host, port, 'master');
  const replica = startTestRedis(dir, host, replicaPort, 'replica', ['--replicaof', host, String(port)]);
  await waitUntil(async () => {
    const role = (await redisCommand(host, replicaPort, 'ROLE')) as unknown[] | null;
    return Array.isArray(role) && role[3] === 'connected';
  }, 30_000);
  project.provide('redis', { host, port });
  return async () => {
    await stopProcess(replica.pid);
    await stopProcess(master.pid);
    rmSync(dir, { recursive: true, force: true });
  };
}

/** A Redis server for tests: no password, no persistence, its log `<name>.log` in `dir`. */
export function startTestRedis(dir: string, host: string, port: number, name: string, args: string[] = []) {
  return startProcess({
    command: '/usr/bin/redis-server',
    args: [
      '--port',
      String(port),
      '--dir',
      dir,
      '--bind',
      host,
      '--protected-mode',
      'no',
      '--save',
      '',
      '--appendonly',
      'no',
      ...args,
    ],
    log: path.join(dir, `${name}.log`),
    cwd: dir,
  });
}
