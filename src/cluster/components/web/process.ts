import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderEnv } from '../../../config.ts';
import { httpStatus, isAlive, type StartedProcess, sleep, startProcess, stopProcess } from '../../process.ts';
import type { SpecOf } from '../../topology/schema.ts';
import { webMetrics } from '../../topology/select.ts';

type Web = SpecOf<'web'>;
/** A process of the site: a web server, or a worker (health on `listen`). */
type SiteProcess = Pick<Web, 'name' | 'listen' | 'metrics'> & { db?: Web['db'] };

/** The checkout this code runs from: web servers run it unless a deploy names another. */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

/**
 * A scaleout web server: the same `scaleout start` as the single server,
 * configured by environment, run from `checkout` (a deploy's build). Resolves
 * once it is ready; a server that exits or is not ready within `readyMs` is
 * stopped and the start fails.
 */
export async function startWeb(
  spec: SiteProcess,
  runDir: string,
  env: Record<string, string>,
  opts: { checkout?: string; readyMs?: number; command?: 'start' | 'worker'; nice?: number } = {},
): Promise<StartedProcess> {
  const checkout = opts.checkout ?? projectRoot;
  const dataDir = path.join(runDir, spec.name);
  mkdirSync(dataDir, { recursive: true });
  const proc = startProcess({
    command: process.execPath,
    args: [path.join(checkout, 'bin', 'scaleout.js'), opts.command ?? 'start'],
    env: {
      ...renderEnv({
        host: spec.listen.host,
        port: spec.listen.port,
        metricsHost: webMetrics(spec).host,
        metricsPort: webMetrics(spec).port,
        dataDir,
        db: spec.db ?? 'postgres',
      }),
      ...env,
    },
    log: path.join(runDir, 'logs', `${spec.name}.log`),
    cwd: checkout,
    nice: opts.nice,
  });
  const deadline = Date.now() + (opts.readyMs ?? 60_000);
  for (;;) {
    if ((await webReady(spec)) === 200) return proc;
    const exited = !isAlive(proc.pid);
    if (exited || Date.now() > deadline) {
      await stopProcess(proc.pid, 5000);
      throw new Error(
        `${spec.name} ${exited ? 'exited before it was ready' : `was not ready within ${opts.readyMs ?? 60_000} ms`} (see ${proc.log})`,
      );
    }
    await sleep(100);
  }
}

export const webReady = (spec: Pick<Web, 'listen'>) =>
  httpStatus(`http://${spec.listen.host}:${spec.listen.port}/readyz`);

/** The version (git commit) a web server reports in /healthz, or undefined when it does not answer. */
export async function webVersion(spec: Pick<Web, 'listen'>): Promise<string | undefined> {
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

/** The health of a web server or a worker, as `status` shows it: ready or not, and the commit it runs. */
export async function siteHealth(spec: Pick<Web, 'listen'>, role: string) {
  const version = await webVersion(spec);
  return {
    ok: (await webReady(spec)) === 200,
    role,
    version,
    // Shown by `status` and on the dashboard beside the health.
    detail: version ? `version ${version.slice(0, 12)}` : undefined,
  };
}
