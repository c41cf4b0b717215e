import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ClusterState, down, up } from '../cluster/run/index.ts';
import { buildPreset, type PresetName, type PresetOptions } from '../cluster/topology/index.ts';
import { renderEnv } from '../config.ts';
import { benchWebEnv, freePort, startNode, waitHealthy } from './processes.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The targets an experiment measures, started one way each: the single
 * server, a preset, and the hello-world baseline (alone, or behind HAProxy in
 * topologies.ts). Each resolves once it answers, and `stop` removes what it made.
 */
export interface Target {
  origin: string;
  stop(): Promise<void>;
}

/** A Fastify hello-world on `host` and a free port: the baseline every experiment measures beside. */
export async function startHello(host = '127.0.0.1', port?: number): Promise<Target> {
  const p = port ?? (await freePort());
  const hello = startNode([path.join(root, 'src/bench/hello.ts'), String(p), host]);
  const origin = `http://${host}:${p}`;
  try {
    await waitHealthy(`${origin}/`, 30_000, hello);
  } catch (err) {
    await hello.stop();
    throw err;
  }
  return { origin, stop: () => hello.stop() };
}

/** The single server (`scaleout start`, its own process) on a free port and a fresh data dir; `env` on top of the bench's. */
export async function startSingle(env: Record<string, string> = {}): Promise<Target> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'scaleout-bench-'));
  const port = await freePort();
  const app = startNode([path.join(root, 'bin/scaleout.js'), 'start', '--port', String(port), '--data-dir', dataDir], {
    ...benchWebEnv,
    ...renderEnv({ metricsPort: 0 }),
    ...env,
  });
  const origin = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await app.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    await waitHealthy(`${origin}/healthz`, 60_000, app);
  } catch (err) {
    await stop();
    throw err;
  }
  return { origin, stop };
}

/** A preset, started by `up` under a run root of its own, with the bench's web settings. */
export async function startPreset(
  preset: PresetName,
  options: PresetOptions & { webEnv?: Record<string, string>; log?: (line: string) => void } = {},
): Promise<Target & { state: ClusterState; runRoot: string }> {
  const { webEnv, log, ...presetOptions } = options;
  const runRoot = await mkdtemp(path.join(os.tmpdir(), `scaleout-bench-${preset}-`));
  const topology = buildPreset(preset, { name: `bench-${preset}`, ...presetOptions });
  let state: ClusterState;
  try {
    state = await up(topology, { runRoot, webEnv: { ...benchWebEnv, ...webEnv }, log });
  } catch (err) {
    await rm(runRoot, { recursive: true, force: true });
    throw err;
  }
  return {
    state,
    runRoot,
    origin: state.publicUrl,
    async stop() {
      await down(state, { purge: true });
      await rm(runRoot, { recursive: true, force: true });
    },
  };
}
