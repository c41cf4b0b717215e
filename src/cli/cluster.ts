import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { dashboardUrl } from '../cluster/components/dashboard/index.ts';
import { projectRoot } from '../cluster/components/web/process.ts';
import { keep, type Level, type LogLine, mergeByTime, parseLines } from '../cluster/logs.ts';
import { isAlive, sleep } from '../cluster/process.ts';
import { down, stateOf, up } from '../cluster/run/index.ts';
import { controlTokenFile } from '../cluster/run/private.ts';
import { shardStatus, status, statusTable } from '../cluster/run/status.ts';
import { checkCheckout } from '../cluster/supervisor/checkout.ts';
import { callSupervisor } from '../cluster/supervisor/client.ts';
import { launchTopology, runSupervisor } from '../cluster/supervisor/index.ts';
import { buildPreset, type PresetName, parseTopology, presets, type Topology } from '../cluster/topology/index.ts';
import { processesOf } from '../cluster/topology/select.ts';
import { loadTestLimits } from '../config.ts';
import { buildDashboard } from '../dashboard/server.ts';

/** The topology named, or the only one with a running process. */
export function pickState(root: string, name?: string) {
  if (name) {
    const state = stateOf(root, name);
    if (!state) throw new Error(`no topology named "${name}" under ${root}`);
    return state;
  }
  const names = existsSync(root) ? readdirSync(root).filter((d) => existsSync(path.join(root, d, 'state.json'))) : [];
  const running = names.map((n) => stateOf(root, n)).filter((s) => s?.processes.some((p) => isAlive(p.pid)));
  if (running.length === 1 && running[0]) return running[0];
  if (running.length === 0) throw new Error('no topology is running: "scaleout up <preset>" starts one');
  throw new Error(`several topologies are running (${running.map((s) => s?.topology.name).join(', ')}): pass --name`);
}

function loadTopology(arg: string, o: UpFlags): Topology {
  if ((presets as readonly string[]).includes(arg)) {
    return buildPreset(arg as PresetName, {
      name: o.name,
      octet: o.octet ? Number(o.octet) : undefined,
      port: o.port ? Number(o.port) : undefined,
      webServers: o.webServers ? Number(o.webServers) : undefined,
      workers: o.workers ? Number(o.workers) : undefined,
      synchronous: !o.async,
      patroniTtl: o.patroniTtl ? Number(o.patroniTtl) : undefined,
      supervise: o.supervise,
      maxRequestsPerServer: o.maxRequestsPerServer ? Number(o.maxRequestsPerServer) : undefined,
      queueTimeoutMs: o.queueTimeoutMs ? Number(o.queueTimeoutMs) : undefined,
      queueDepthPerServer: o.queueDepthPerServer !== undefined ? Number(o.queueDepthPerServer) : undefined,
      webHeapMb: o.webHeapMb ? Number(o.webHeapMb) : undefined,
      shardClusters: o.shardClusters ? Number(o.shardClusters) : undefined,
    });
  }
  if (existsSync(arg)) return parseTopology(JSON.parse(readFileSync(arg, 'utf8')));
  throw new Error(`"${arg}" is neither a preset (${presets.join(', ')}) nor a topology file`);
}

interface UpFlags {
  loadTest?: boolean;
  name?: string;
  octet?: string;
  port?: string;
  webServers?: string;
  workers?: string;
  async?: boolean;
  patroniTtl?: string;
  print?: boolean;
  supervise?: boolean;
  maxRequestsPerServer?: string;
  queueTimeoutMs?: string;
  queueDepthPerServer?: string;
  webHeapMb?: string;
  shardClusters?: string;
}

export function clusterCommands(program: Command, root: string): void {
  program
    .command('up')
    .description(
      `Start a topology (a preset: ${presets.join(', ')}; or a topology JSON file) and wait until it is healthy`,
    )
    .argument('<preset|file>')
    .option('--name <name>', 'name of this topology (two can run at once under different names)')
    .option('--octet <n>', 'second octet of every address, 127.<n>.x.y')
    .option('--port <port>', 'port of the public endpoint (lb: 8080)')
    .option('--web-servers <n>', 'web servers behind the load balancer (lb: 2)')
    .option('--workers <n>', 'job workers at start (queue: 2)')
    .option('--no-supervise', 'start no supervisor: what dies stays dead')
    .option('--async', 'asynchronous replication instead of synchronous (lb)')
    .option('--patroni-ttl <s>', 'Patroni leader TTL, the failover detection time (lb: 5)')
    .option('--load-test', 'raise the per-client log-in and sign-up limits, for seeding and benchmarks')
    .option(
      '--max-requests-per-server <n>',
      "admission control: requests one web server serves at once (HAProxy's maxconn; 5)",
    )
    .option(
      '--queue-depth-per-server <n>',
      "admission control: the balancer's queue, per web server, at which a read gets a 503 at once (a write at a third, a sign-up or upload at a sixth; a third of those while the queue stands; 0: off, the default; try 24 with --queue-timeout-ms 500)",
    )
    .option('--queue-timeout-ms <ms>', "admission control: the longest wait in the balancer's queue before a 503 (25)")
    .option('--web-heap-mb <mb>', "V8's old-space limit of each web server (96)")
    .option('--shard-clusters <n>', 'Patroni clusters the logical shards are placed on (sharded: 2)')
    .option('--print', 'print the topology as JSON and start nothing')
    .action(async (arg: string, o: UpFlags) => {
      const topology = loadTopology(arg, o);
      if (o.print) {
        process.stdout.write(`${JSON.stringify(topology, null, 2)}\n`);
        return;
      }
      const started = Date.now();
      const state = await up(topology, {
        runRoot: root,
        log: (l) => process.stdout.write(`${l}\n`),
        webEnv: o.loadTest ? loadTestLimits : undefined,
      });
      const board = processesOf(state.topology, 'dashboard')[0];
      const control = board
        ? `  dashboard: ${dashboardUrl(board)}/?token=${state.secrets.control}\n  token:     ${controlTokenFile(state.runDir)} (the supervisor's API and the dashboard ask for it)\n`
        : '';
      process.stdout.write(
        `\n"${topology.name}" is up in ${((Date.now() - started) / 1000).toFixed(1)} s\n  site:      ${state.publicUrl}\n${control}  run dir:   ${state.runDir}\n\n${statusTable(await status(state))}\n`,
      );
    });

  program
    .command('status')
    .description('Every process of a running topology: role, address, PID, health, replication lag')
    .option('--name <name>')
    .option('--json', 'machine-readable output')
    .action(async (o: { name?: string; json?: boolean }) => {
      const state = pickState(root, o.name);
      const rows = await status(state);
      const shards = await shardStatus(state, rows);
      if (o.json)
        process.stdout.write(
          `${JSON.stringify({ name: state.topology.name, preset: state.topology.preset, publicUrl: state.publicUrl, ...(shards ? { shards } : {}), processes: rows }, null, 2)}\n`,
        );
      else
        process.stdout.write(
          `${state.topology.name} (${state.topology.preset})  ${state.publicUrl}\n${shards ? `shard map version ${shards.mapVersion}: ${shards.clusters.map((c) => `${c.name} ${c.logicalShards.length} logical shards (primary ${c.primary ?? 'none'})`).join(', ')}\n` : ''}\n${statusTable(rows)}\n`,
        );
      if (rows.some((r) => r.health !== 'healthy')) process.exitCode = 3;
    });

  program
    .command('logs')
    .description('The logs of a running topology, every process merged by time, or one process')
    .argument('[service]', 'a process name, e.g. web-1, pg-2, load-balancer')
    .option('--name <name>')
    .option('--level <level>', 'only lines at this level or above: debug, info, warn, error')
    .option('--request-id <id>', "only the lines of one request (HAProxy's and the web server's)")
    .option('-f, --follow', 'keep printing new lines')
    .action(
      async (
        service: string | undefined,
        o: { name?: string; level?: Level; requestId?: string; follow?: boolean },
      ) => {
        const state = pickState(root, o.name);
        const files = state.processes.filter((p) => !service || p.name === service);
        if (files.length === 0) throw new Error(`no process named "${service}"`);
        if (o.level && !['debug', 'info', 'warn', 'error'].includes(o.level))
          throw new Error(`unknown level ${o.level}`);
        const offsets = new Map<string, number>();
        const lastTime = new Map<string, number>();
        const read = () => {
          const lines: LogLine[] = [];
          for (const f of files) {
            if (!existsSync(f.log)) continue;
            const size = statSync(f.log).size;
            const from = offsets.get(f.log) ?? 0;
            if (size <= from) continue;
            const chunk = readFileSync(f.log).subarray(from, size).toString('utf8');
            // Keep a partial last line for the next read.
            const end = chunk.lastIndexOf('\n') + 1;
            offsets.set(f.log, from + Buffer.byteLength(chunk.slice(0, end)));
            const parsed = parseLines(f.name, chunk.slice(0, end), lastTime.get(f.name));
            if (parsed.length) lastTime.set(f.name, parsed[parsed.length - 1]?.time ?? Number.NaN);
            lines.push(...parsed);
          }
          for (const l of mergeByTime(lines)) {
            if (keep(l, o))
              process.stdout.write(files.length > 1 ? `${l.service.padEnd(14)} | ${l.text}\n` : `${l.text}\n`);
          }
        };
        read();
        while (o.follow) {
          await sleep(250);
          read();
        }
      },
    );

  program
    .command('dashboard')
    .description(
      'Serve the dashboard of a running topology: live processes, kill/restart buttons, charts from Prometheus',
    )
    .option('--name <name>')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port', '8090')
    .option('--token <token>', "the token it asks for (default: the run's control token, from control.token)")
    .action(async (o: { name?: string; host: string; port: string; token?: string }) => {
      const state = pickState(root, o.name);
      const { app, token } = await buildDashboard({
        runRoot: root,
        name: state.topology.name,
        host: o.host,
        port: Number(o.port),
        token: o.token,
      });
      const url = await app.listen({ host: o.host, port: Number(o.port) });
      process.stdout.write(`dashboard of "${state.topology.name}": ${url}/?token=${token}\n`);
      const stop = () => void app.close().then(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });

  program
    .command('supervise', { hidden: true })
    .description('Keep the processes of the topology in --run-dir running (started by up)')
    .requiredOption('--run-dir <dir>')
    .option('--launch', 'first start every process of the topology (up does this)')
    .action(async (o: { runDir: string; launch?: boolean }) => {
      const runDir = path.resolve(o.runDir);
      if (o.launch) await launchTopology(runDir);
      const supervisor = await runSupervisor(runDir);
      const stop = () => void supervisor.close().then(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });

  program
    .command('scale')
    .description(
      'Set the number of web servers (web=N) or workers (worker=N): new ones join when ready, leaving ones drain first',
    )
    .argument('<tier=count...>', 'web=N and/or worker=N')
    .option('--name <name>')
    .action(async (args: string[], o: { name?: string }) => {
      const counts: { web?: number; worker?: number } = {};
      for (const arg of args) {
        const m = /^(web|worker)=(\d+)$/.exec(arg);
        if (!m)
          throw new Error(`expected web=<count> or worker=<count>, e.g. "scaleout scale web=4 worker=2", got "${arg}"`);
        counts[m[1] as 'web' | 'worker'] = Number(m[2]);
      }
      const state = pickState(root, o.name);
      const answer = await callSupervisor<{
        webServers?: string[];
        workers?: string[];
        autoscalerPaused?: boolean;
        error?: string;
      }>(state, 'POST', '/scale', counts);
      if (answer.status !== 200) throw new Error(answer.body.error ?? `HTTP ${answer.status}`);
      if (answer.body.autoscalerPaused)
        process.stdout.write('the autoscaler is paused ("scaleout autoscale --on" resumes it)\n');
      if (answer.body.webServers)
        process.stdout.write(`${answer.body.webServers.length} web servers: ${answer.body.webServers.join(', ')}\n`);
      if (answer.body.workers)
        process.stdout.write(`${answer.body.workers.length} workers: ${answer.body.workers.join(', ') || '(none)'}\n`);
    });

  program
    .command('autoscale')
    .description(
      "Show or change an autoscaler (Kubernetes HPA's rule): the web tier's (requests in flight per server) or the worker tier's (jobs per worker slot)",
    )
    .option('--name <name>')
    .option('--tier <tier>', 'web (default) or worker')
    .option('--min <n>', 'fewest web servers')
    .option('--max <n>', 'most web servers (16 at most)')
    .option('--target <n>', 'requests in flight per web server to aim for')
    .option('--stabilization <s>', 'seconds a lower recommendation must hold before scaling down (default 60)')
    .option('--tolerance <x>', 'no change while metric/target is within 1 ± this (default 0.1)')
    .option('--period <s>', 'seconds between decisions (default 5)')
    .option('--on', 'turn it on')
    .option('--off', 'turn it off (the count then changes only by "scaleout scale")')
    .action(
      async (o: {
        name?: string;
        min?: string;
        max?: string;
        target?: string;
        stabilization?: string;
        tolerance?: string;
        period?: string;
        on?: boolean;
        off?: boolean;
        tier?: string;
      }) => {
        if (o.on && o.off) throw new Error('--on and --off: give one of them');
        if (o.tier !== undefined && o.tier !== 'web' && o.tier !== 'worker')
          throw new Error(`--tier: web or worker, got "${o.tier}"`);
        const num = (v: string | undefined, flag: string) => {
          if (v === undefined) return undefined;
          const n = Number(v);
          if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`${flag}: expected a number, got "${v}"`);
          return n;
        };
        const change = {
          min: num(o.min, '--min'),
          max: num(o.max, '--max'),
          target: num(o.target, '--target'),
          stabilizationSeconds: num(o.stabilization, '--stabilization'),
          tolerance: num(o.tolerance, '--tolerance'),
          periodSeconds: num(o.period, '--period'),
          enabled: o.off ? false : o.on ? true : undefined,
        };
        const given = Object.fromEntries(Object.entries(change).filter(([, v]) => v !== undefined));
        const state = pickState(root, o.name);
        const answer =
          Object.keys(given).length === 0
            ? await callSupervisor<Record<string, unknown>>(state, 'GET', '/status')
            : await callSupervisor<Record<string, unknown>>(state, 'POST', '/autoscale', {
                ...given,
                ...(o.tier ? { tier: o.tier } : {}),
              });
        if (answer.status !== 200) throw new Error(String(answer.body.error ?? `HTTP ${answer.status}`));
        process.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
      },
    );

  program
    .command('deploy')
    .description('Rolling deploy: replace every web server, one at a time, with one running this checkout')
    .option('--name <name>')
    .option('--from <dir>', 'the checkout to deploy (default: the one this command runs from)')
    .option('--ready-timeout <s>', 'seconds a new server may take to become ready before the deploy stops', '60')
    .action(async (o: { name?: string; from?: string; readyTimeout: string }) => {
      const readySeconds = Number(o.readyTimeout);
      if (o.readyTimeout.trim() === '' || !Number.isFinite(readySeconds) || readySeconds <= 0 || readySeconds > 600)
        throw new Error(`--ready-timeout: expected seconds from 1 to 600, got "${o.readyTimeout}"`);
      const state = pickState(root, o.name);
      // The supervisor checks it again (it runs it as root): a git checkout of this project, the operator's.
      const checkout = checkCheckout(path.resolve(o.from ?? projectRoot));
      const started = Date.now();
      const answer = await callSupervisor<{
        version?: string;
        replaced?: { old: string; new: string }[];
        error?: string;
      }>(state, 'POST', '/deploy', { checkout, readySeconds });
      if (answer.status !== 200) throw new Error(answer.body.error ?? `HTTP ${answer.status}`);
      for (const r of answer.body.replaced ?? []) process.stdout.write(`  ${r.old} → ${r.new}\n`);
      process.stdout.write(
        `deployed ${answer.body.version?.slice(0, 12)} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
      );
    });

  program
    .command('down')
    .description('Stop every process of a running topology by PID')
    .option('--name <name>')
    .option('--purge', 'also delete its run directory (data, logs, configs)')
    .action(async (o: { name?: string; purge?: boolean }) => {
      const state = pickState(root, o.name);
      await down(state, { purge: Boolean(o.purge) });
      const left = state.processes.filter((p) => isAlive(p.pid));
      process.stdout.write(
        left.length === 0
          ? `"${state.topology.name}" is down\n`
          : `still running: ${left.map((p) => `${p.name} (${p.pid})`).join(', ')}\n`,
      );
      if (left.length > 0) process.exitCode = 1;
    });
}
