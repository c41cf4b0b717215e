import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { benchEndpoints, endpointTable } from '../bench/endpoints.ts';
import { compareInProcess, compareRedis, evictionTable, redisEvictionTable } from '../bench/eviction.ts';
import { benchFailover } from '../bench/failover.ts';
import { benchFsync, fsyncTable } from '../bench/fsync.ts';
import { benchPresets, presetTable } from '../bench/presets.ts';
import { machine } from '../bench/report.ts';
import { type ScenarioName, scenarioNames } from '../bench/scenarios.ts';
import { seed } from '../bench/seed.ts';
import { benchStart, startTable } from '../bench/start.ts';
import { benchStateless } from '../bench/stateless.ts';
import { benchTopologies, topologyTable } from '../bench/topologies.ts';
import { type PresetName, presets } from '../cluster/topology/index.ts';
import { defaultManifest, registerLoadCommands } from './load.ts';

/** seed and the benchmark commands. */
/** Writes a benchmark's results as JSON, with the machine and the date, when a file was asked for. */
async function saveResults(file: string | undefined, results: Record<string, unknown>): Promise<void> {
  if (file)
    await writeFile(file, JSON.stringify({ machine: machine(), date: new Date().toISOString(), ...results }, null, 2));
}

/** A comma-separated option as a list; blanks dropped. */
const list = (text = '') =>
  text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);

export function benchCommands(program: Command): void {
  registerLoadCommands(program);
  program
    .command('seed')
    .description('Fill a running scaleout through its API with users, follows and photos (repeatable from --seed)')
    .requiredOption('--target <url>', 'base URL, e.g. http://127.0.0.1:3000')
    .option('--users <n>', 'accounts to create', '51')
    .option('--photos <n>', 'photos to upload', '500')
    .option('--follows <n>', 'how many users the viewer (user 0) follows', '50')
    .option('--seed <n>', 'seed of the random generator', '1')
    .option('--out <file>', 'where to write the manifest (users, tokens, photo ids) that bench reads', defaultManifest)
    .action(
      async (o: { target: string; users: string; photos: string; follows: string; seed: string; out?: string }) => {
        const manifest = await seed({
          target: o.target,
          users: Number(o.users),
          photos: Number(o.photos),
          follows: Number(o.follows),
          seed: Number(o.seed),
          log: (line) => process.stderr.write(`${line}\n`),
        });
        if (o.out) {
          await mkdir(path.dirname(path.resolve(o.out)), { recursive: true });
          await writeFile(o.out, JSON.stringify(manifest, null, 2));
        }
        process.stdout.write(`seeded ${manifest.users.length} users and ${manifest.photoIds.length} photos\n`);
      },
    );

  program
    .command('bench-endpoints')
    .description(
      'Single-server benchmark: peak req/s and open-loop latency of three reads beside a Fastify hello-world',
    )
    .option('--seconds <n>', 'seconds per measurement', '10')
    .option('--connections <n>', 'connections of the closed loop', '16')
    .option('--load <fraction>', 'open-loop rate as a fraction of the peak', '0.5')
    .option('--out <file>', 'also write the results as JSON')
    .action(async (o: { seconds: string; connections: string; load: string; out?: string }) => {
      const rows = await benchEndpoints({
        seconds: Number(o.seconds),
        connections: Number(o.connections),
        loadFraction: Number(o.load),
        log: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(`machine: ${machine()}\n\n${endpointTable(rows)}\n`);
      await saveResults(o.out, { rows });
    });

  program
    .command('bench-fsync')
    .description('The cost of durable originals: the upload scenario with SCALEOUT_BLOB_FSYNC on and off')
    .option('--rate <n>', 'uploads per second (open loop)', '20')
    .option('--seconds <n>', 'seconds per run', '20')
    .option('--users <n>', 'seeded users who upload', '20')
    .option('--out <dir>', 'where the runs write their reports', 'bench-out/fsync')
    .option('--json <file>', 'also write the results as JSON')
    .action(async (o: { rate: string; seconds: string; users: string; out: string; json?: string }) => {
      const rows = await benchFsync({
        rate: Number(o.rate),
        seconds: Number(o.seconds),
        users: Number(o.users),
        out: o.out,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(`machine: ${machine()}\n\n${fsyncTable(rows)}\n`);
      await saveResults(o.json, { rows });
    });

  program
    .command('bench-eviction')
    .description(
      'Hit ratios of LRU, LFU, FIFO and W-TinyLFU on a Zipf and a scan-heavy trace; Redis allkeys-lru vs allkeys-lfu',
    )
    .option('--keys <n>', 'key space', '10000')
    .option('--requests <n>', 'requests per trace', '300000')
    .option('--redis-requests <n>', 'requests per trace against Redis', '100000')
    .option('--maxmemory <size>', 'Redis maxmemory, below the working set', '4mb')
    .option('--value-bytes <n>', 'size of each cached value in Redis', '1024')
    .option('--out <file>', 'also write the results as JSON')
    .action(
      async (o: {
        keys: string;
        requests: string;
        redisRequests: string;
        maxmemory: string;
        valueBytes: string;
        out?: string;
      }) => {
        const inProcess = compareInProcess(Number(o.keys), Number(o.requests));
        const redis = await compareRedis({
          keys: Number(o.keys),
          requests: Number(o.redisRequests),
          valueBytes: Number(o.valueBytes),
          maxmemory: o.maxmemory,
        });
        process.stdout.write(
          `machine: ${machine()}\n\nIn process (${o.keys} keys, ${o.requests} requests per trace):\n\n${evictionTable(inProcess)}\n\nRedis (${o.keys} keys of ${o.valueBytes} B, ${o.redisRequests} requests per trace):\n\n${redisEvictionTable(redis)}\n`,
        );
        await saveResults(o.out, { inProcess, redis });
      },
    );

  program
    .command('bench-start')
    .description('Warm start of the single server: spawn to the first 200 of /healthz, natively and through tsx')
    .option('--runs <n>', 'starts of each variant', '10')
    .option('--out <file>', 'also write the results as JSON')
    .action(async (o: { runs: string; out?: string }) => {
      const rows = await benchStart({ runs: Number(o.runs), log: (line) => process.stderr.write(`${line}\n`) });
      process.stdout.write(`machine: ${machine()}\n\n${startTable(rows)}\n`);
      await saveResults(o.out, { rows });
    });

  program
    .command('bench-topologies')
    .description(
      'GET /api/v1/photos/{id} and /api/v1/feed on single, db, lb (1 and 2 web servers), cache (2) beside a hello-world behind HAProxy',
    )
    .option('--presets <list>', 'only these presets, comma-separated (single, db, lb, cache)')
    .option('--seconds <n>', 'seconds per measurement', '10')
    .option('--connections <n>', 'connections of the closed loop', '16')
    .option('--load <fraction>', 'open-loop rate as a fraction of the peak', '0.5')
    .option('--users <n>', 'seeded users (the viewer follows all the others)', '51')
    .option('--photos <n>', 'seeded photos', '500')
    .option('--out <file>', 'also write the results as JSON')
    .action(
      async (o: {
        seconds: string;
        connections: string;
        load: string;
        users: string;
        photos: string;
        presets?: string;
        out?: string;
      }) => {
        const rows = await benchTopologies({
          presets: o.presets?.split(',').map((p) => p.trim()),
          seconds: Number(o.seconds),
          connections: Number(o.connections),
          loadFraction: Number(o.load),
          users: Number(o.users),
          photos: Number(o.photos),
          log: (line) => process.stderr.write(`${line}\n`),
        });
        process.stdout.write(`machine: ${machine()}\n\n${topologyTable(rows)}\n`);
        await saveResults(o.out, { rows });
      },
    );

  program
    .command('bench-failover')
    .description(
      'Kill -9 the primary of an lb topology under a write load; report the write outage and acknowledged writes lost',
    )
    .option('--async', 'asynchronous replication (default: synchronous)')
    .option('--rate <n>', 'writes (follows) per second', '100')
    .option('--users <n>', 'users whose follows are written', '60')
    .option('--seconds <n>', 'length of the write load', '30')
    .option('--keep', 'leave the topology running afterwards (to read its logs)')
    .option('--kill-after <s>', 'when to kill the primary', '10')
    .option('--out <file>', 'also write the result as JSON')
    .action(
      async (o: { async?: boolean; rate: string; users: string; seconds: string; killAfter: string; out?: string }) => {
        const result = await benchFailover({
          synchronous: !o.async,
          writeRate: Number(o.rate),
          users: Number(o.users),
          seconds: Number(o.seconds),
          keep: Boolean((o as { keep?: boolean }).keep),
          killAfterSeconds: Number(o.killAfter),
          log: (line) => process.stderr.write(`${line}\n`),
        });
        process.stdout.write(`machine: ${machine()}\n${JSON.stringify(result, null, 2)}\n`);
        await saveResults(o.out, { result });
      },
    );

  program
    .command('bench-presets')
    .description(
      'Highest rate of a scenario each preset (single, db, lb, cache) sustains with p99 under a bound, beside a hello-world',
    )
    .option('--presets <list>', 'presets to sweep, comma-separated', 'single,db,lb,cache')
    .option('--scenarios <list>', 'scenarios to sweep on each preset, comma-separated (mixed, celebrity, …)', 'mixed')
    .option('--p99 <ms>', 'the p99 bound', '100')
    .option('--step-seconds <n>', 'seconds per sweep step', '10')
    .option('--start-rate <n>', 'first rate of the sweep (hello-world starts at 10×)', '20')
    .option('--users <n>', 'seeded users', '100')
    .option('--photos <n>', 'seeded photos', '200')
    .option('--out <dir>', 'reports of every preset go here', 'bench-out/presets')
    .action(
      async (o: {
        p99: string;
        stepSeconds: string;
        startRate: string;
        users: string;
        photos: string;
        out: string;
        presets: string;
        scenarios: string;
      }) => {
        const presetNames = list(o.presets);
        const unknownPreset = presetNames.find((p) => !(presets as readonly string[]).includes(p));
        if (unknownPreset) throw new Error(`unknown preset ${unknownPreset}: one of ${presets.join(', ')}`);
        const scenarios = list(o.scenarios);
        const unknownScenario = scenarios.find((s) => !(scenarioNames as readonly string[]).includes(s));
        if (unknownScenario) throw new Error(`unknown scenario ${unknownScenario}: one of ${scenarioNames.join(', ')}`);
        const rows = await benchPresets({
          presets: presetNames as PresetName[],
          scenarios: scenarios as ScenarioName[],
          p99Ms: Number(o.p99),
          stepSeconds: Number(o.stepSeconds),
          startRate: Number(o.startRate),
          users: Number(o.users),
          photos: Number(o.photos),
          out: o.out,
          log: (line) => process.stderr.write(`${line}\n`),
        });
        process.stdout.write(`machine: ${machine()}\n\n${presetTable(rows, Number(o.p99))}\n`);
        await saveResults(path.join(o.out, 'presets.json'), { rows });
      },
    );

  program
    .command('bench-stateless')
    .description(
      'Step 1.6 on the stateless preset: capacity at 1, 2, 4 web servers; the autoscaler under a ramp; a rolling deploy under load',
    )
    .option('--parts <list>', 'capacity, ramp, deploy (comma-separated)', 'capacity,ramp,deploy')
    .option('--scenario <name>', 'the load', 'mixed')
    .option('--web-counts <list>', 'capacity: web-server counts to sweep', '1,2,4')
    .option('--p99 <ms>', 'capacity: the p99 bound', '100')
    .option('--step-seconds <n>', 'capacity: seconds per sweep step', '10')
    .option('--start-rate <n>', 'capacity: first rate of the sweep', '40')
    .option('--low <n>', 'ramp: the low rate', '50')
    .option('--high <n>', 'ramp: the high rate', '400')
    .option('--target <n>', 'ramp: requests in flight per server the autoscaler aims for', '4')
    .option('--max <n>', 'ramp: most web servers', '6')
    .option('--stabilization <s>', "ramp: the autoscaler's scale-down window", '60')
    .option('--deploy-rate <n>', 'deploy: the steady rate', '150')
    .option('--deploy-seconds <n>', 'deploy: how long the load runs (the deploy starts after a fifth)', '60')
    .option('--users <n>', 'seeded users', '100')
    .option('--photos <n>', 'seeded photos', '200')
    .option(
      '--out <dir>',
      'reports go here (ramp/report.html: rate, p99 and server count over time)',
      'bench-out/stateless',
    )
    .action(async (o: Record<string, string>) => {
      const parts = list(o.parts);
      const unknown = parts.find((p) => !['capacity', 'ramp', 'deploy'].includes(p));
      if (unknown) throw new Error(`unknown part ${unknown}: capacity, ramp or deploy`);
      if (!(scenarioNames as readonly string[]).includes(o.scenario as string))
        throw new Error(`unknown scenario ${o.scenario}: one of ${scenarioNames.join(', ')}`);
      const n = (k: string) => Number(o[k]);
      const result = await benchStateless({
        out: o.out as string,
        scenario: o.scenario as ScenarioName,
        p99Ms: n('p99'),
        stepSeconds: n('stepSeconds'),
        startRate: n('startRate'),
        webCounts: list(o.webCounts).map(Number),
        ramp: {
          low: n('low'),
          high: n('high'),
          target: n('target'),
          max: n('max'),
          stabilizationSeconds: n('stabilization'),
        },
        deploy: { rate: n('deployRate'), seconds: n('deploySeconds') },
        parts: parts as ('capacity' | 'ramp' | 'deploy')[],
        users: n('users'),
        photos: n('photos'),
        log: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(`machine: ${result.machine}\n`);
      if (result.capacity) process.stdout.write(`\n${presetTable(result.capacity, n('p99'))}\n`);
      if (result.ramp) {
        const r = result.ramp;
        process.stdout.write(
          `\nramp (${r.out}/report.html): ${r.sent} sent, ${r.failed} failed, ${r.lostWrites} writes lost; servers max ${r.maxServers}, at the end ${r.endServers}\n| phase | seconds | p99 ms | web servers seen |\n|---|---|---:|---|\n${r.phases.map((p) => `| ${p.phase} | ${p.from}–${p.to} | ${p.p99} | ${p.servers} |`).join('\n')}\n`,
        );
      }
      if (result.deploy) {
        const d = result.deploy;
        process.stdout.write(
          `\ndeploy under ${d.rate} req/s: ${d.replaced} servers replaced in ${d.deploySeconds} s; ${d.sent} sent, ${d.failed} failed, ${d.lostWrites} writes lost; p99 before ${d.p99Before} ms, during ${d.p99During} ms, after ${d.p99After} ms\n`,
        );
      }
    });
}
