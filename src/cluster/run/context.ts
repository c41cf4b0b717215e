import path from 'node:path';
import { type ConfigInput, renderEnv } from '../../config.ts';
import type { RunContext } from '../components/component.ts';
import { components } from '../components/registry.ts';
import { allProcesses, processesIn, publicUrl } from '../topology/select.ts';
import type { ClusterState } from './state.ts';

export interface ContextOptions {
  restarting?: boolean;
  log?: (line: string) => void;
  /** Shared by the contexts of one status call. */
  memo?: Map<string, Promise<unknown>>;
}

/** The context of the processes of one scope (a data center, or null for the global one). */
export function contextFor(state: ClusterState, dataCenter: string | null, o: ContextOptions = {}): RunContext {
  const memo = o.memo ?? new Map<string, Promise<unknown>>();
  const scope = dataCenter ? processesIn(state.topology, { dataCenter }) : allProcesses(state.topology);
  const ctx: RunContext = {
    state,
    topology: state.topology,
    runDir: state.runDir,
    dataCenter,
    scope,
    restarting: o.restarting ?? false,
    log: o.log ?? (() => {}),
    appEnv: () => appEnv(state, dataCenter),
    siteEnv: (kind) => siteEnv(state, dataCenter, kind),
    once<T>(key: string, compute: () => Promise<T>): Promise<T> {
      let value = memo.get(key) as Promise<T> | undefined;
      if (!value) {
        value = compute();
        memo.set(key, value);
      }
      return value;
    },
  };
  return ctx;
}

/**
 * Where a data center's photos are stored: one store for the site, or with
 * several data centers one each (a photo sync sends each the other's).
 */
export const blobDirOf = (state: Pick<ClusterState, 'runDir' | 'topology'>, dataCenter: string | null): string =>
  state.topology.dataCenters.length > 1 && dataCenter
    ? path.join(state.runDir, 'blobs', dataCenter)
    : path.join(state.runDir, 'blobs');

/**
 * Discovery: the configuration of a web or worker process of one data
 * center, from what the components of that data center and of the global
 * scope provide (a database URL, the Sentinels, the balancer's address), in
 * start order, over the site's own settings.
 */
export function appConfig(state: ClusterState, dataCenter: string | null): Partial<ConfigInput> {
  const config: Partial<ConfigInput> = {
    blobDir: blobDirOf(state, dataCenter),
    // One signing secret for every web server of the site (their forms' CSRF tokens).
    secret: state.secrets.site,
    // Links are built from the public URL, never from a request's Host: with several data centers, each
    // data center's own (its pages' images and links lead to it, not to a data center that may be gone).
    publicUrl:
      dataCenter && state.topology.dataCenters.length > 1 ? publicUrl(state.topology, dataCenter) : state.publicUrl,
  };
  const scopes = [state.topology.global.processes, dataCenter ? processesIn(state.topology, { dataCenter }) : []];
  for (const c of [...components()].sort((a, b) => a.stage - b.stage)) {
    if (!c.provides) continue;
    for (const processes of scopes) {
      const specs = processes.filter((p) => p.kind === c.kind);
      if (specs.length === 0) continue;
      const owner = processes === state.topology.global.processes ? null : dataCenter;
      Object.assign(config, c.provides(specs, contextFor(state, owner)));
    }
  }
  if (state.topology.dataCenters.length > 1) {
    Object.assign(config, {
      // Each data center has its own Redis, which the other does not see and which goes with it: what a
      // user's next request may need in the other one (the session, a retried write's key) is in PostgreSQL,
      durableState: 'database',
      // each cache Redis hears of the other data center's writes through the primary's NOTIFY,
      cacheInvalidation: 'database',
      // and the feed is read from the database: a fan-out would push into its own data center's Redis only.
      feedTimelines: 'off',
    } satisfies Partial<ConfigInput>);
  }
  return config;
}

/** `appConfig` as the environment the process reads it from, with the run's extra settings on top. */
export const appEnv = (state: ClusterState, dataCenter: string | null): Record<string, string> => ({
  ...renderEnv(appConfig(state, dataCenter)),
  ...state.webEnv,
});

/**
 * The environment of one process of the site: `appEnv` and its role. A
 * worker runs the jobs; a web server runs them too (role `all`, its
 * in-process queue) unless the topology gives them to workers (role `web`).
 */
export const siteEnv = (
  state: ClusterState,
  dataCenter: string | null,
  kind: 'web' | 'worker',
): Record<string, string> => {
  const o = state.topology.options;
  const workersRunJobs = o.jobs === 'workers';
  return {
    // Bounded memory: V8's old space sized to the job (it would size itself to the machine's 24 GB), a
    // small young generation, and two malloc arenas (glibc makes one per thread: the libuv pool's, libvips').
    NODE_OPTIONS: `--max-old-space-size=${kind === 'worker' ? o.workerHeapMb : o.webHeapMb} --max-semi-space-size=${o.semiSpaceMb}`,
    MALLOC_ARENA_MAX: '2',
    ...appEnv(state, dataCenter),
    ...renderEnv(
      kind === 'worker'
        ? { role: 'worker', workerConcurrency: state.topology.options.workerConcurrency }
        : { role: workersRunJobs ? 'web' : 'all' },
    ),
  };
};
