import path from 'node:path';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { isAlive, startProcess, stopProcess, waitUntil } from '../../src/cluster/process.ts';
import { loadState, type SiteSecrets, writeState } from '../../src/cluster/run/state.ts';
import { watchRestarts } from '../../src/cluster/supervisor/restarts.ts';
import { buildPreset } from '../../src/cluster/topology/presets.ts';
import { tempDir } from '../support/temp.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Blocks this process's event loop for `ms`: timers fall due while a child's exit waits to be handled. */
const busy = (ms: number) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {}
};

describe("the supervisor's record of a death", () => {
  it('keeps the exit code of a child whose exit event comes after the watch saw it gone', async () => {
    const tmp = await tempDir();
    cleanups.push(tmp.remove);
    const runDir = tmp.dir;
    const topology = buildPreset('stateless', { name: `exits-${process.pid}` });
    const child = startProcess({
      command: process.execPath,
      args: ['-e', 'setTimeout(() => process.exit(0), 200)'],
      log: path.join(runDir, 'web-1.log'),
    });
    cleanups.push(() => stopProcess(child.pid, 1000));
    writeState({
      topology,
      runDir,
      publicUrl: 'http://127.0.0.1:1',
      secrets: {} as SiteSecrets,
      processes: [{ name: 'web-1', kind: 'web', pid: child.pid, log: child.log }],
      startedAt: new Date().toISOString(),
    });
    const restarts = watchRestarts(
      runDir,
      pino({ level: 'silent' }),
      new Counter({
        name: 'restarts_test_total',
        help: 'test',
        labelNames: ['process', 'kind'],
        registers: [new Registry()],
      }),
    );
    cleanups.push(() => restarts.stop());
    // The child exits (a zombie) and the watch's next tick falls due while this loop is busy:
    // the tick runs before the exit is handled, and must not record the death without its code.
    busy(900);
    expect(isAlive(child.pid)).toBe(false);
    await waitUntil(() => loadState(runDir).processes[0]?.lastExit !== undefined, 5000, 'the death recorded');
    expect(loadState(runDir).processes[0]?.lastExit).toMatchObject({ code: 0, signal: null });
  });
});
