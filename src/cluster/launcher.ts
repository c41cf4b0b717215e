import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { startDashboard } from './components/dashboard.ts';
import { startEtcd } from './components/etcd.ts';
import { dbProxyConfig, loadBalancerConfig, startHaproxy } from './components/haproxy.ts';
import { startHostExporter } from './components/host-exporter.ts';
import { type DbSecrets, startPatroni, waitForCluster } from './components/patroni.ts';
import { ensureAppDatabase, startPostgresServer } from './components/postgres.ts';
import { startPostgresExporter } from './components/postgres-exporter.ts';
import { startPrometheus } from './components/prometheus.ts';
import {
  currentMaster,
  redisWebEnv,
  startRedis,
  startRedisExporter,
  startSentinel,
  waitForSentinels,
} from './components/redis.ts';
import { spawnSupervisor, startSupervisor } from './components/supervisor.ts';
import { projectRoot, startWeb } from './components/web.ts';
import {
  httpStatus,
  isAlive,
  type StartedProcess,
  sleep,
  spawned,
  stopProcess,
  tcpOpen,
  waitUntil,
} from './process.ts';
import {
  addressesOf,
  allProcesses,
  type ProcessKind,
  type ProcessSpec,
  publicUrl,
  type Topology,
  topologySchema,
} from './topology.ts';

export interface RunningProcess {
  name: string;
  kind: ProcessKind;
  pid: number;
  log: string;
  /** Times the supervisor has started it again. */
  restarts?: number;
  /** How its last run ended, as the supervisor saw it (code and signal are null when it was not the parent). */
  lastExit?: ProcessExit;
}

export interface ProcessExit {
  at: string;
  code: number | null;
  signal: string | null;
}

/** How a process ended, in a word or two: "SIGKILL", "code 1", "unknown". */
export const howExited = (e: ProcessExit): string => e.signal ?? (e.code !== null ? `code ${e.code}` : 'unknown');

/** What `up` leaves in the run directory, so that status, logs and down can find everything by PID. */
export interface ClusterState {
  topology: Topology;
  runDir: string;
  publicUrl: string;
  secrets: DbSecrets;
  processes: RunningProcess[];
  startedAt: string;
  /** The checkout the web servers run (the project's own, until a deploy names another). */
  checkout?: string;
  /** Where `up` is: starting, up, or failed (with `error`). */
  phase?: 'starting' | 'up' | 'failed';
  error?: string;
}

export interface UpOptions {
  runRoot: string;
  log?: (line: string) => void;
  /** Extra environment for the web servers (tests raise rate limits, for one). */
  webEnv?: Record<string, string>;
}

const appUser = 'scaleout';
const appDatabase = 'scaleout';
const stateFile = (runDir: string) => path.join(runDir, 'state.json');

export function readState(runRoot: string, name: string): ClusterState | null {
  return readStateDir(path.join(runRoot, name));
}

/** The state of the topology in `runDir`, which must exist. */
export function loadState(runDir: string): ClusterState {
  const state = readStateDir(runDir);
  if (!state) throw new Error(`no topology in ${runDir}`);
  return state;
}

export function readStateDir(runDir: string): ClusterState | null {
  const file = stateFile(runDir);
  if (!existsSync(file)) return null;
  const state = JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
  state.topology = topologySchema.parse(state.topology);
  return state;
}

const save = (state: ClusterState) => {
  const file = stateFile(state.runDir);
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2));
  renameSync(`${file}.tmp`, file);
};

/**
 * Changes the state file as it is now on disk (the supervisor and the CLI
 * both write it: each change is a read-modify-write of the latest copy) and
 * returns the new state.
 */
export function updateState(runDir: string, change: (state: ClusterState) => void): ClusterState {
  const state = JSON.parse(readFileSync(stateFile(runDir), 'utf8')) as ClusterState;
  state.topology = topologySchema.parse(state.topology);
  change(state);
  save(state);
  return state;
}

/**
 * Renders and starts every server of a topology, in dependency order, and
 * waits until each is healthy. On any failure it stops what it started.
 */
export async function up(topology: Topology, opts: UpOptions): Promise<ClusterState> {
  const log = opts.log ?? (() => {});
  const runDir = path.join(opts.runRoot, topology.name);
  const previous = readState(opts.runRoot, topology.name);
  if (previous?.processes.some((p) => isAlive(p.pid))) {
    throw new Error(`topology "${topology.name}" is already running: "scaleout down --name ${topology.name}" first`);
  }
  const busy = (
    await Promise.all(
      allProcesses(topology)
        .flatMap(addressesOf)
        .map(async (a) => ((await tcpOpen(a.host, a.port, 300)) ? `${a.host}:${a.port}` : null)),
    )
  ).filter(Boolean);
  if (busy.length > 0) {
    throw new Error(`already in use: ${busy.join(', ')} (another topology? give this one another --name or --octet)`);
  }
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(path.join(runDir, 'logs'), { recursive: true });
  chmodSync(opts.runRoot, 0o755);
  chmodSync(runDir, 0o755);
  const secret = () => randomBytes(12).toString('hex');
  const state: ClusterState = {
    topology,
    runDir,
    publicUrl: publicUrl(topology),
    secrets: { superuser: secret(), replication: secret(), rewind: secret(), app: secret() },
    processes: [],
    startedAt: new Date().toISOString(),
    checkout: projectRoot,
  };
  state.phase = 'starting';
  save(state);
  const supervisor = allProcesses(topology).find((p) => p.kind === 'supervisor');
  if (!supervisor) return startAll(state, opts.webEnv ?? {}, log);
  // Supervised: the supervisor starts every process itself, so that each is its child and it sees how
  // each one ends (exit code, signal). This process follows its progress in the state file and up.log.
  writeFileSync(path.join(runDir, 'launch.json'), JSON.stringify({ webEnv: opts.webEnv ?? {} }), { mode: 0o600 });
  const launcher = spawnSupervisor(supervisor.name, runDir, { launch: true });
  const progress = path.join(runDir, 'logs', 'up.log');
  let shown = 0;
  const follow = () => {
    if (!existsSync(progress)) return;
    const lines = readFileSync(progress, 'utf8').split('\n').slice(0, -1);
    for (const line of lines.slice(shown)) log(line);
    shown = lines.length;
  };
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    await sleep(200);
    follow();
    const now = readStateDir(runDir);
    if (now?.phase === 'up') return now;
    if (now?.phase === 'failed') throw new Error(now.error ?? 'start failed');
    if (!isAlive(launcher.pid)) throw new Error(`the supervisor exited while starting (see ${launcher.log})`);
    if (Date.now() > deadline) {
      await stopProcess(launcher.pid, 30_000);
      throw new Error('the topology did not start within 15 min');
    }
  }
}

/**
 * Starts every process of the topology in `state`, in dependency order, and
 * waits until each is healthy. On any failure it stops what it started.
 * `self`: run by the supervisor, which records itself last instead of starting one.
 */
export async function startAll(
  state: ClusterState,
  extraWebEnv: Record<string, string>,
  log: (line: string) => void,
  self?: { pid: number; log: string },
): Promise<ClusterState> {
  const { topology, runDir } = state;
  const record = (spec: ProcessSpec, p: StartedProcess) => {
    state.processes.push({ name: spec.name, kind: spec.kind, pid: p.pid, log: p.log });
    save(state);
    log(`  ${spec.name.padEnd(14)} pid ${p.pid}`);
  };

  try {
    const all = allProcesses(topology);
    const of = <K extends ProcessKind>(kind: K) =>
      all.filter((p): p is Extract<ProcessSpec, { kind: K }> => p.kind === kind);
    const webEnv: Record<string, string> = {
      SCALEOUT_BLOB_DIR: path.join(runDir, 'blobs'),
      // One signing secret for every web server of the site (their forms' CSRF tokens).
      SCALEOUT_SECRET: randomBytes(32).toString('base64url'),
      // Links are built from the public URL, never from a request's Host.
      SCALEOUT_PUBLIC_URL: state.publicUrl,
      ...extraWebEnv,
    };

    for (const pg of of('postgres')) {
      log(`starting PostgreSQL ${pg.listen.host}:${pg.listen.port}`);
      record(
        pg,
        await startPostgresServer({
          dir: path.join(runDir, pg.name),
          host: pg.listen.host,
          port: pg.listen.port,
          superuserPassword: state.secrets.superuser,
        }),
      );
      await ensureAppDatabase(
        { host: pg.listen.host, port: pg.listen.port, password: state.secrets.superuser },
        { user: appUser, password: state.secrets.app, database: appDatabase },
      );
      webEnv.SCALEOUT_DATABASE_URL = `postgres://${appUser}:${state.secrets.app}@${pg.listen.host}:${pg.listen.port}/${appDatabase}`;
    }

    const [etcd] = of('etcd');
    const nodes = of('patroni');
    if (nodes.length > 0) {
      if (!etcd) throw new Error('Patroni needs etcd in the topology');
      log(`starting etcd ${etcd.client.host}:${etcd.client.port}`);
      record(etcd, await startEtcd(etcd, runDir));
      log(
        `starting ${nodes.length} Patroni nodes (PostgreSQL 15, ${topology.options.synchronous ? 'synchronous' : 'asynchronous'} replication)`,
      );
      for (const node of nodes) record(node, startPatroni(topology, node, etcd, runDir, state.secrets));
      const leader = await waitForCluster(nodes, topology.options.synchronous, 120_000);
      log(`  leader: ${leader}`);
    }

    for (const proxy of of('dbProxy')) {
      log(`starting the database proxy (HAProxy) ${proxy.primary.host}:${proxy.primary.port}/${proxy.replicas.port}`);
      record(proxy, await startHaproxy(proxy.name, dbProxyConfig(proxy, nodes), runDir, proxy.primary));
      await waitUntil(
        () =>
          ensureAppDatabase(
            { host: proxy.primary.host, port: proxy.primary.port, password: state.secrets.superuser },
            { user: appUser, password: state.secrets.app, database: appDatabase },
          ).then(() => true),
        30_000,
        'the primary through the database proxy',
      );
      webEnv.SCALEOUT_DATABASE_URL = `postgres://${appUser}:${state.secrets.app}@${proxy.primary.host}:${proxy.primary.port}/${appDatabase}`;
      webEnv.SCALEOUT_PATRONI_URLS = nodes.map((n) => `http://${n.rest.host}:${n.rest.port}`).join(',');
    }

    const redises = of('redis');
    if (redises.length > 0) {
      log(`starting Redis: ${redises.length} servers and ${of('redisSentinel').length} Sentinels`);
      const byName = new Map(redises.map((r) => [r.name, r]));
      // Masters first, then their replicas.
      for (const r of [...redises.filter((x) => !x.replicaOf), ...redises.filter((x) => x.replicaOf)]) {
        const master = r.replicaOf ? byName.get(r.replicaOf)?.listen : undefined;
        record(r, await startRedis(topology, r, runDir, master));
      }
      const masters = redises.filter((x) => !x.replicaOf);
      for (const s of of('redisSentinel')) record(s, await startSentinel(s, masters, runDir));
      await waitForSentinels(of('redisSentinel'), masters);
      Object.assign(webEnv, redisWebEnv(of('redisSentinel')));
    }

    const webs = of('web');
    const [lb] = of('loadBalancer');
    if (lb) {
      // Only the balancer may say who the client is: it connects from its own address (see its `source`).
      webEnv.SCALEOUT_TRUST_PROXY = lb.listen.host;
    }
    // Kept so that a web server can be restarted later with the same settings.
    writeFileSync(path.join(runDir, 'web.env.json'), JSON.stringify(webEnv), { mode: 0o600 });
    log(`starting ${webs.length} web server${webs.length > 1 ? 's' : ''}`);
    // The first server applies the migrations; the others then start together.
    const [first, ...rest] = webs;
    if (first) record(first, await startWeb(first, runDir, webEnv));
    const started = await Promise.allSettled(rest.map((w) => startWeb(w, runDir, webEnv).then((p) => record(w, p))));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;

    for (const exporter of of('redisExporter')) {
      const server = redises.find((r) => r.name === exporter.server);
      if (!server) throw new Error(`${exporter.name}: no Redis named ${exporter.server}`);
      log(`starting the Redis exporter http://${exporter.listen.host}:${exporter.listen.port}/metrics`);
      record(exporter, await startRedisExporter(exporter, server, runDir));
    }

    for (const host of of('hostExporter')) {
      log(`starting the host exporter http://${host.listen.host}:${host.listen.port}/metrics`);
      record(host, await startHostExporter(host, runDir));
    }

    for (const exporter of of('postgresExporter')) {
      log(`starting the PostgreSQL exporter http://${exporter.listen.host}:${exporter.listen.port}/metrics`);
      record(exporter, await startPostgresExporter(topology, exporter, runDir, state.secrets.superuser));
    }

    for (const prom of of('prometheus')) {
      log(`starting Prometheus http://${prom.listen.host}:${prom.listen.port}`);
      record(prom, await startPrometheus(topology, prom, runDir));
    }

    for (const d of of('dashboard')) {
      log(`starting the dashboard http://${d.listen.host}:${d.listen.port}`);
      record(d, await startDashboard(topology, d, path.dirname(runDir), runDir));
    }

    if (lb) {
      log(`starting the load balancer (HAProxy) ${state.publicUrl}`);
      record(lb, await startHaproxy(lb.name, loadBalancerConfig(lb, webs), runDir, lb.listen));
      await waitUntil(
        async () => (await httpStatus(`${state.publicUrl}/readyz`)) === 200,
        30_000,
        'the site through the load balancer',
      );
    }

    // Last: from here on, what dies is started again.
    // (`up` leaves a topology with a supervisor to it: it is `self` here.)
    for (const supervisor of of('supervisor')) if (self) record(supervisor, self);
    // A supervisor that started it all says "up" once its control API answers.
    if (!self) {
      state.phase = 'up';
      save(state);
    }
    return state;
  } catch (err) {
    log(`start failed: ${(err as Error).message}; stopping what was started`);
    await down(state, { purge: false });
    // Also what was spawned but never became healthy, so never recorded.
    const recorded = new Set(state.processes.map((p) => p.pid));
    for (const pid of spawned) if (!recorded.has(pid)) await stopProcess(pid, 5000);
    state.phase = 'failed';
    state.error = (err as Error).message;
    save(state);
    throw err;
  }
}

/** Stops every process by PID, the front first and the data last. */
export async function down(state: ClusterState, opts: { purge: boolean }): Promise<void> {
  // Another process (the dashboard) may have restarted some: the state file has the latest PIDs.
  const file = stateFile(state.runDir);
  const latest = () => {
    if (existsSync(file)) state.processes = (JSON.parse(readFileSync(file, 'utf8')) as ClusterState).processes;
  };
  latest();
  // The supervisor first, so that nothing is started again; it finishes the change it was making
  // (a web server it was adding is then in the state file, read again below).
  for (const p of state.processes.filter((x) => x.kind === 'supervisor')) await stopProcess(p.pid, 30_000);
  latest();
  for (const p of [...state.processes].reverse()) await stopProcess(p.pid, 15_000);
  // A Patroni killed with SIGKILL leaves its PostgreSQL running, holding the port for the next `up`:
  // found by its data dir's postmaster.pid and stopped with a fast shutdown (SIGINT).
  for (const orphan of runningPostmasters(state)) await stopProcess(orphan.pid, 15_000, 'SIGINT');
  if (opts.purge) rmSync(state.runDir, { recursive: true, force: true });
}

/**
 * Starts one process of a running topology again, from its spec, with the
 * configuration and data it had (a Patroni node rejoins as a replica,
 * rewinding if it was the old leader).
 */
export async function restart(
  state: ClusterState,
  name: string,
  opts: {
    webEnv?: Record<string, string> /** The supervisor's restart: counted in `restarts`. */;
    counted?: boolean;
  } = {},
): Promise<RunningProcess> {
  // The topology may have changed since the caller read it (scaling, deploys, other restarts).
  Object.assign(state, readStateDir(state.runDir));
  const spec = allProcesses(state.topology).find((p) => p.name === name);
  if (!spec) throw new Error(`no process named "${name}"`);
  const old = state.processes.find((p) => p.name === name);
  if (old && isAlive(old.pid)) throw new Error(`${name} is still running (pid ${old.pid})`);
  const all = allProcesses(state.topology);
  let started: StartedProcess;
  switch (spec.kind) {
    case 'web':
      started = await startWeb(
        spec,
        state.runDir,
        { ...webEnvOf(state), ...opts.webEnv },
        { checkout: state.checkout },
      );
      break;
    case 'patroni': {
      const etcd = all.find((p) => p.kind === 'etcd');
      if (etcd?.kind !== 'etcd') throw new Error('no etcd in the topology');
      // As systemd stops what is left in a service's cgroup before a restart: the PostgreSQL a killed
      // Patroni left running goes first (fast shutdown), so the node starts clean and rejoins as a replica.
      const orphan = postmasterPid(state, spec.name);
      if (orphan) await stopProcess(orphan, 15_000, 'SIGINT');
      started = startPatroni(state.topology, spec, etcd, state.runDir, state.secrets);
      break;
    }
    case 'loadBalancer': {
      const webs = all.filter((p): p is Extract<ProcessSpec, { kind: 'web' }> => p.kind === 'web');
      started = await startHaproxy(spec.name, loadBalancerConfig(spec, webs), state.runDir, spec.listen);
      break;
    }
    case 'dbProxy': {
      const nodes = all.filter((p): p is Extract<ProcessSpec, { kind: 'patroni' }> => p.kind === 'patroni');
      started = await startHaproxy(spec.name, dbProxyConfig(spec, nodes), state.runDir, spec.primary);
      break;
    }
    case 'etcd':
      started = await startEtcd(spec, state.runDir);
      break;
    case 'prometheus':
      started = await startPrometheus(state.topology, spec, state.runDir);
      break;
    case 'hostExporter':
      started = await startHostExporter(spec, state.runDir);
      break;
    case 'postgresExporter':
      started = await startPostgresExporter(state.topology, spec, state.runDir, state.secrets.superuser);
      break;
    case 'redis': {
      const sentinels = all.filter(
        (p): p is Extract<ProcessSpec, { kind: 'redisSentinel' }> => p.kind === 'redisSentinel',
      );
      // A server that comes back joins the tier's current master as a replica (never as a stale master).
      const master = await currentMaster(sentinels, spec.tier);
      const self = master && master.host === spec.listen.host && master.port === spec.listen.port;
      started = await startRedis(state.topology, spec, state.runDir, self ? undefined : (master ?? undefined));
      break;
    }
    case 'redisSentinel': {
      const masters = all.filter(
        (p): p is Extract<ProcessSpec, { kind: 'redis' }> => p.kind === 'redis' && p.replicaOf === undefined,
      );
      started = await startSentinel(spec, masters, state.runDir);
      break;
    }
    case 'redisExporter': {
      const server = all.find((p) => p.name === spec.server);
      if (server?.kind !== 'redis') throw new Error(`${spec.name}: no Redis named ${spec.server}`);
      started = await startRedisExporter(spec, server, state.runDir);
      break;
    }
    case 'dashboard':
      started = await startDashboard(state.topology, spec, path.dirname(state.runDir), state.runDir);
      break;
    case 'supervisor':
      started = await startSupervisor(spec, state.runDir);
      break;
    case 'postgres':
      started = await startPostgresServer({
        dir: path.join(state.runDir, spec.name),
        host: spec.listen.host,
        port: spec.listen.port,
        superuserPassword: state.secrets.superuser,
      });
      break;
  }
  let entry: RunningProcess = { name, kind: spec.kind, pid: started.pid, log: started.log };
  const latest = updateState(state.runDir, (s) => {
    const before = s.processes.find((p) => p.name === name);
    const restarts = (before?.restarts ?? 0) + (opts.counted ? 1 : 0);
    entry = { ...entry, restarts: restarts || undefined, lastExit: before?.lastExit };
    s.processes = [...s.processes.filter((p) => p.name !== name), entry];
  });
  state.processes = latest.processes;
  return entry;
}

/** The environment every web server of the topology starts with (written by `up`). */
export const webEnvOf = (state: ClusterState): Record<string, string> =>
  JSON.parse(readFileSync(path.join(state.runDir, 'web.env.json'), 'utf8')) as Record<string, string>;

/**
 * The PostgreSQL server process under a Patroni node (its data dir's
 * postmaster.pid), if running. PIDs are reused, so only a process whose
 * command line names this data dir counts.
 */
export function postmasterPid(state: ClusterState, node: string): number | null {
  const dataDir = path.join(state.runDir, node, 'data');
  const file = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return null;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(dataDir) ? pid : null;
  } catch {
    return null;
  }
}

/** PostgreSQL servers of the topology's Patroni nodes that still run (a Patroni killed with SIGKILL leaves its own). */
export function runningPostmasters(state: ClusterState): { node: string; pid: number }[] {
  return allProcesses(state.topology)
    .filter((p) => p.kind === 'patroni')
    .map((p) => ({ node: p.name, pid: postmasterPid(state, p.name) }))
    .filter((p): p is { node: string; pid: number } => p.pid !== null);
}

/** Runs one query as the superuser on the current primary (through the database proxy), for checks and benchmarks. */
export async function queryPrimary<T extends pg.QueryResultRow>(
  state: ClusterState,
  text: string,
  values: unknown[] = [],
): Promise<pg.QueryResult<T>> {
  const proxy = allProcesses(state.topology).find((p) => p.kind === 'dbProxy');
  if (proxy?.kind !== 'dbProxy') throw new Error('this topology has no database proxy');
  const client = new pg.Client({
    host: proxy.primary.host,
    port: proxy.primary.port,
    user: 'postgres',
    password: state.secrets.superuser,
    database: appDatabase,
  });
  client.on('error', () => {});
  await client.connect();
  try {
    return await client.query<T>(text, values);
  } finally {
    await client.end();
  }
}
