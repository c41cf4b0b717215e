import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpStatus, type StartedProcess, startProcess, waitUntil } from '../process.ts';
import { type ProcessSpec, webMetrics } from '../topology.ts';

type Web = Extract<ProcessSpec, { kind: 'web' }>;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** A scaleout web server: the same `scaleout start` as the single server, configured by environment. */
export async function startWeb(spec: Web, runDir: string, env: Record<string, string>): Promise<StartedProcess> {
  const dataDir = path.join(runDir, spec.name);
  mkdirSync(dataDir, { recursive: true });
  const proc = startProcess({
    command: process.execPath,
    args: [path.join(root, 'bin', 'scaleout.js'), 'start'],
    env: {
      SCALEOUT_HOST: spec.listen.host,
      SCALEOUT_PORT: String(spec.listen.port),
      SCALEOUT_METRICS_HOST: webMetrics(spec).host,
      SCALEOUT_METRICS_PORT: String(webMetrics(spec).port),
      SCALEOUT_DATA_DIR: dataDir,
      SCALEOUT_DB: spec.db,
      ...env,
    },
    log: path.join(runDir, 'logs', `${spec.name}.log`),
    cwd: root,
  });
  await waitUntil(async () => (await webReady(spec)) === 200, 60_000, `${spec.name} /readyz`);
  return proc;
}

export const webReady = (spec: Web) => httpStatus(`http://${spec.listen.host}:${spec.listen.port}/readyz`);

/** The version (git commit) a web server reports in /healthz, or undefined when it does not answer. */
export async function webVersion(spec: Web): Promise<string | undefined> {
  try {
    const res = await fetch(`http://${spec.listen.host}:${spec.listen.port}/healthz`, {
      signal: AbortSignal.timeout(2000),
    });
    const body = (await res.json()) as { version?: unknown };
    return typeof body.version === 'string' ? body.version : undefined;
  } catch {
    return undefined;
  }
}
