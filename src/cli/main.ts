import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import packageJson from '../../package.json' with { type: 'json' };
import { parseHostPort } from '../cluster/topology/address.ts';
import { type Config, ConfigError, loadConfig, runRoot } from '../config.ts';
import { createRuntime } from '../runtime.ts';
import { adminCommands } from './admin.ts';
import { benchCommands } from './bench.ts';
import { clusterCommands } from './cluster.ts';
import { dataCenterCommands } from './datacenter.ts';
import { dnsCommands } from './dns.ts';
import { reshardCommands } from './reshard.ts';
import { setup } from './setup.ts';
import { closeOnSignal } from './signals.ts';

const packageVersion = packageJson.version;

// A reader that has read enough (`scaleout status | head`) closes the pipe: end quietly, as a Unix tool does.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const program = new Command()
  .name('scaleout')
  .description('A photo-sharing service, from one process to millions of users')
  .version(`scaleout ${packageVersion} on Node.js ${process.version}`, '-v, --version')
  // A command's options belong to it, not to a parent that has options of the same name (bench --out, bench run … --out).
  .enablePositionalOptions();

/** Runs the site (or its jobs) in this process until SIGTERM or SIGINT. */
async function serve(config: Config): Promise<void> {
  const runtime = await createRuntime(config).catch((err: Error) => {
    process.stderr.write(`scaleout: cannot start: ${err.message}\n`);
    process.exit(1);
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    runtime.logger.info({ signal }, 'shutting down');
    // SIGTERM (a supervisor, a deploy, a scale-in): out of the balancer's rotation first, then close.
    // Closing lets requests in flight finish and closes idle keep-alive connections; a worker
    // takes no new job and finishes the ones it runs.
    if (signal === 'SIGTERM' && config.role !== 'worker')
      runtime.logger.info(await runtime.drain.begin(), 'drained: closing');
    await runtime.close();
    runtime.logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  const url = await runtime.listen();
  runtime.logger.info(
    { url, dataDir: config.dataDir, role: config.role },
    config.role === 'worker' ? `scaleout worker: taking jobs (health at ${url})` : `scaleout is serving ${url}`,
  );
}

program
  .command('worker')
  .description(
    "Run a job worker: photo variants, fan-out and edge purges from the shared queue (BullMQ on the topology's durable Redis); health on --port",
  )
  .addOption(new Option('--host <host>', 'address of its health endpoints (SCALEOUT_HOST, default 127.0.0.1)'))
  .addOption(new Option('--port <port>', 'port of its health endpoints (SCALEOUT_PORT, default 3000)'))
  .addOption(new Option('--data-dir <dir>', 'its data dir (SCALEOUT_DATA_DIR)'))
  .addOption(new Option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent'))
  .action(async (flags: Partial<Record<keyof Config, string>>) => {
    await serve(configOrExit({ ...flags, role: 'worker' }));
  });

program
  .command('start')
  .description('Run the single-server site: web, embedded PostgreSQL (PGlite), in-process cache and queue')
  .addOption(new Option('--host <host>', 'address to listen on (SCALEOUT_HOST, default 127.0.0.1)'))
  .addOption(new Option('--port <port>', 'port to listen on (SCALEOUT_PORT, default 3000)'))
  .addOption(new Option('--data-dir <dir>', 'where the database and photos live (SCALEOUT_DATA_DIR, default ./data)'))
  .addOption(new Option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent'))
  .addOption(new Option('--cache-policy <policy>', 'lru, lfu or fifo'))
  .action(async (flags: Partial<Record<keyof Config, string>>) => {
    await serve(configOrExit(flags));
  });

program
  .command('openapi')
  .description("Print the JSON API's OpenAPI document, as a fresh single server serves it at /api/v1/openapi.json")
  .addOption(new Option('--out <file>', 'write it to this file instead of stdout'))
  .action(async (flags: { out?: string }) => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'scaleout-openapi-'));
    try {
      // Never listening: inject() names the host localhost:80, which the site must answer to.
      const config = loadConfig(process.env, { dataDir, logLevel: 'silent', allowedHosts: 'localhost:80' });
      const runtime = await createRuntime(config);
      const answer = await runtime.server.inject({ method: 'GET', url: '/api/v1/openapi.json' });
      await runtime.close();
      if (answer.statusCode !== 200) throw new Error(`the document: ${answer.statusCode} ${answer.body}`);
      const document = `${JSON.stringify(answer.json(), null, 2)}\n`;
      if (flags.out) {
        await mkdir(path.dirname(flags.out), { recursive: true });
        await writeFile(flags.out, document);
      } else process.stdout.write(document);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

program
  .command('delay-proxy')
  .description(
    'A TCP proxy that delays every byte by --delay-ms each way: the distance between two data centers on one machine',
  )
  .requiredOption('--listen <host:port>', 'where it listens')
  .requiredOption('--target <host:port>', 'where it connects')
  .requiredOption('--delay-ms <ms>', 'the delay each way')
  .action(async (o: { listen: string; target: string; delayMs: string }) => {
    const { startDelayProxy } = await import('../cluster/components/delay-proxy/proxy.ts');
    const delayMs = Number(o.delayMs);
    if (!Number.isFinite(delayMs) || delayMs < 0 || delayMs > 1000) throw new Error('--delay-ms: 0 to 1000');
    const proxy = await startDelayProxy({ listen: parseHostPort(o.listen), target: parseHostPort(o.target), delayMs });
    process.stdout.write(`delaying ${o.listen} → ${o.target} by ${delayMs} ms each way\n`);
    closeOnSignal(() => proxy.close());
  });

program
  .command('dns-health')
  .description(
    "The data centers' health for the DNS, with hysteresis: /up/<dataCenter> answers 200 while it is up (PowerDNS asks it with ifurlextup), /metrics",
  )
  .requiredOption('--listen <host:port>', 'where it listens')
  .requiredOption('--target <dataCenter=url...>', "each data center's readiness URL")
  .option('--host-header <host>', 'the Host to probe with')
  .action(async (o: { listen: string; target: string[]; hostHeader?: string }) => {
    const { startHealthAggregator } = await import('../cluster/components/dns/health.ts');
    const listen = parseHostPort(o.listen);
    const targets = o.target.map((t) => {
      const [dataCenter, url] = [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)];
      if (!dataCenter || !/^https?:\/\//.test(url)) throw new Error(`--target: dataCenter=url, not ${t}`);
      return { dataCenter, url, hostHeader: o.hostHeader };
    });
    const agg = await startHealthAggregator({ listen, targets, log: (m) => process.stdout.write(`${m}\n`) });
    process.stdout.write(`probing ${targets.map((t) => t.dataCenter).join(', ')}; listening on ${o.listen}\n`);
    closeOnSignal(() => agg.close());
  });

program
  .command('setup')
  .description('Install the Debian packages that the tests and topologies need (only the missing ones)')
  .action(() => {
    process.exitCode = setup();
  });

benchCommands(program);
clusterCommands(program, runRoot(process.env));
reshardCommands(program, runRoot(process.env));
adminCommands(program, runRoot(process.env));
dnsCommands(program, runRoot(process.env));
dataCenterCommands(program, runRoot(process.env));
function configOrExit(flags: Partial<Record<keyof Config, string>>): Config {
  try {
    return loadConfig(process.env, flags);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`scaleout: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`scaleout: ${(err as Error).message}\n`);
  process.exit(1);
}
