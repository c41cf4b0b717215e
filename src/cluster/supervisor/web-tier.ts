import { codeVersion } from '../../platform/version.ts';
import { backendServers, backupName, type RuntimeApi, runtimeApi } from '../components/load-balancer/haproxy.ts';
import { writeBalancerConfig } from '../components/load-balancer/index.ts';
import { writeDynamicTargets } from '../components/prometheus/index.ts';
import { startWeb } from '../components/web/process.ts';
import { isAlive, sleep, stopProcess, tcpOpen } from '../process.ts';
import { siteEnv } from '../run/context.ts';
import { type ClusterState, loadState, updateState } from '../run/state.ts';
import { webServerSpec } from '../topology/presets.ts';
import { maxWebServers, type SpecOf, type Topology } from '../topology/schema.ts';
import { balancerOf, firstDataCenter, planOf, webIndex, webServers } from '../topology/select.ts';

type Web = SpecOf<'web'>;

/**
 * Changes to the web tier of a running topology, each keeping the balancer,
 * the state file and Prometheus in step: a server joins once it is ready,
 * through its slot in the balancer (runtime API); it leaves by drain (state
 * `drain`, wait until it serves nothing, state `maint`, SIGTERM).
 */
export interface WebTierOptions {
  log: (msg: string, fields?: Record<string, unknown>) => void;
  /** How long a new server may take to be ready. */
  readyMs?: number;
  /** How long a leaving server may take to finish what it serves. */
  drainMs?: number;
  /** The data center whose web tier changes (default: the first). */
  dataCenter?: string;
}

const dcOf = (t: Topology, o: WebTierOptions) => o.dataCenter ?? firstDataCenter(t);

/** The balancer's config file follows the topology, so a restarted balancer has the same servers. */
function syncFiles(state: ClusterState, dataCenter: string): void {
  writeBalancerConfig(state.topology, balancerOf(state.topology, dataCenter), state.runDir);
  writeDynamicTargets(state.topology, state.runDir);
}

async function waitForBalancer(lb: RuntimeApi, name: string, ok: (status: string) => boolean, ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    const server = (await backendServers(lb).catch(() => [])).find((s) => s.name === name);
    if (server && ok(server.status)) return server;
    if (Date.now() > deadline)
      throw new Error(`${name}: the balancer shows ${server?.status ?? 'nothing'} after ${ms} ms`);
    await sleep(100);
  }
}

/** The lowest slot that no web server of the topology uses and whose address is free. */
async function freeSlot(t: Topology, dataCenter: string): Promise<Web> {
  const used = new Set(webServers(t, dataCenter).map(webIndex));
  for (let i = 1; i <= maxWebServers; i++) {
    if (used.has(i)) continue;
    const spec = webServerSpec(planOf(t), dataCenter, i);
    if (!(await tcpOpen(spec.listen.host, spec.listen.port, 200))) return spec;
  }
  throw new Error(`no free slot: at most ${maxWebServers} web servers`);
}

/** Starts one more web server (from `checkout`), waits until it is ready, then puts it into rotation. */
export async function addWebServer(runDir: string, o: WebTierOptions & { checkout?: string }): Promise<Web> {
  let state = loadState(runDir);
  const dataCenter = dcOf(state.topology, o);
  const lb = { runDir, lb: balancerOf(state.topology, dataCenter) };
  const spec = await freeSlot(state.topology, dataCenter);
  const checkout = o.checkout ?? state.checkout;
  o.log(`starting ${spec.name}`, { server: spec.name, checkout, dataCenter });
  const started = await startWeb(spec, runDir, siteEnv(state, dataCenter, 'web'), { checkout, readyMs: o.readyMs });
  state = updateState(runDir, (s) => {
    const dc = s.topology.dataCenters.find((d) => d.name === dataCenter);
    // Beside the other web servers (status and the dashboard list processes in this order).
    const last = dc?.processes.findLastIndex((p) => p.kind === 'web') ?? -1;
    dc?.processes.splice(last + 1, 0, spec);
    s.processes.push({
      name: spec.name,
      kind: 'web',
      pid: started.pid,
      log: started.log,
      startTime: started.startTime,
    });
  });
  syncFiles(state, dataCenter);
  await runtimeApi(lb, `set server web/${spec.name} state ready`);
  await runtimeApi(lb, `set server web/${backupName(spec.name)} state ready`);
  await waitForBalancer(lb, spec.name, (s) => s.startsWith('UP'), 15_000);
  o.log(`${spec.name} is in rotation`, { server: spec.name, pid: started.pid });
  return spec;
}

/** Takes a web server out of rotation by drain, then stops it (SIGTERM: its own graceful shutdown). */
export async function removeWebServer(runDir: string, name: string, o: WebTierOptions): Promise<void> {
  let state = loadState(runDir);
  const dataCenter = dcOf(state.topology, o);
  const lb = { runDir, lb: balancerOf(state.topology, dataCenter) };
  const entry = state.processes.find((p) => p.name === name);
  // Out of the state first: the supervisor must not start it again once it stops.
  state = updateState(runDir, (s) => {
    for (const dc of s.topology.dataCenters) dc.processes = dc.processes.filter((p) => p.name !== name);
    s.processes = s.processes.filter((p) => p.name !== name);
  });
  syncFiles(state, dataCenter);
  const started = Date.now();
  try {
    await runtimeApi(lb, `set server web/${name} state drain`);
    await runtimeApi(lb, `set server web/${backupName(name)} state drain`);
    const deadline = started + (o.drainMs ?? 30_000);
    for (;;) {
      // The slot's requests: on its checked entry, and on its backup entry if every server was down.
      const entries = (await backendServers(lb)).filter((s) => s.name === name || s.name === backupName(name));
      const server = entries.find((s) => s.name === name);
      if (!server || entries.every((s) => s.current === 0 && s.queued === 0)) break;
      if (Date.now() > deadline) {
        o.log(`${name} still serves ${server.current} requests after ${o.drainMs ?? 30_000} ms: stopping it anyway`);
        break;
      }
      await sleep(50);
    }
    await runtimeApi(lb, `set server web/${name} state maint`);
    await runtimeApi(lb, `set server web/${backupName(name)} state maint`);
  } catch (err) {
    // The balancer is down (its restart reads the config file, where this slot is off already):
    // the server still stops, by its own drain.
    o.log(`${name}: the balancer did not answer (${(err as Error).message}); stopping it by SIGTERM alone`);
  }
  if (entry && isAlive(entry.pid)) await stopProcess(entry.pid, 30_000);
  o.log(`${name} drained and stopped in ${Date.now() - started} ms`, { server: name });
}

/** Starts or drains web servers until there are `count`: new ones in the lowest free slots, the highest go first. */
export async function scaleWebTier(runDir: string, count: number, o: WebTierOptions): Promise<Web[]> {
  if (!Number.isInteger(count) || count < 1 || count > maxWebServers)
    throw new Error(`web servers: 1 to ${maxWebServers}`);
  for (;;) {
    const t = loadState(runDir).topology;
    const webs = webServers(t, dcOf(t, o));
    if (webs.length === count) return webs;
    if (webs.length < count) await addWebServer(runDir, o);
    else {
      const last = [...webs].sort((a, b) => webIndex(b) - webIndex(a))[0];
      if (last) await removeWebServer(runDir, last.name, o);
    }
  }
}

export interface DeployResult {
  version: string;
  replaced: { old: string; new: string }[];
}

/**
 * A rolling deploy: for each web server, one at a time, start a new one from
 * `checkout`, wait until it is ready and in rotation, then drain and stop the
 * old one. A new server that never becomes ready stops the deploy; the old
 * servers keep serving and the new one is stopped.
 */
export async function deployWebTier(runDir: string, checkout: string, o: WebTierOptions): Promise<DeployResult> {
  const version = codeVersion(checkout);
  const t = loadState(runDir).topology;
  const olds = webServers(t, dcOf(t, o));
  o.log(`deploying ${version} from ${checkout} to ${olds.length} web servers`, { version, checkout });
  const replaced: DeployResult['replaced'] = [];
  for (const old of olds) {
    let added: Web;
    try {
      added = await addWebServer(runDir, { ...o, checkout });
    } catch (err) {
      throw new Error(
        `deploy stopped after ${replaced.length} of ${olds.length}: ${(err as Error).message}; the other servers keep serving`,
      );
    }
    await removeWebServer(runDir, old.name, o);
    replaced.push({ old: old.name, new: added.name });
  }
  updateState(runDir, (s) => {
    s.checkout = checkout;
  });
  o.log(`deployed ${version}`, { version, replaced });
  return { version, replaced };
}
