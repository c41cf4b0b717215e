import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { freePort } from '../../src/bench/processes.ts';
import { startPostgresServer } from '../../src/cluster/components/postgres/server.ts';
import { stopProcess } from '../../src/cluster/process.ts';
import { randomLoopbackHost } from './addresses.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    postgres: { host: string; port: number; password: string };
  }
}

/**
 * One real PostgreSQL 15 server for the whole test run, on a free port of its
 * own 127.x address. Each test file makes its own database on it.
 */
export default async function setup(project: TestProject) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'scaleout-pg-'));
  const host = randomLoopbackHost();
  const port = await freePort();
  const password = `pw${Math.random().toString(36).slice(2)}`;
  const server = await startPostgresServer({
    dir,
    host,
    port,
    superuserPassword: password,
    hbaSources: ['127.0.0.1/32'],
  });
  project.provide('postgres', { host, port, password });
  return async () => {
    await stopProcess(server.pid);
    rmSync(dir, { recursive: true, force: true });
  };
}
