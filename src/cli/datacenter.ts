import path from 'node:path';
import type { Command } from 'commander';
import { type ClusterState, loadState } from '../cluster/run/state.ts';
import type { SpecOf } from '../cluster/topology/schema.ts';
import { processesOf } from '../cluster/topology/select.ts';
import { pickState } from './cluster.ts';
import { closeOnSignal } from './signals.ts';

/** The witness' control API (loaded when a command runs: the CLI starts light). */
async function callWitness<T>(state: ClusterState, method: 'GET' | 'POST', route: string, body?: unknown) {
  const { callWitness: call } = await import('../cluster/datacenter/witness-client.ts');
  return call<T>(state, method, route, body);
}

/**
 * A hidden command that runs one control process of the run in --run-dir, as `up` starts it
 * (`scaleout <command> --run-dir <run> --name <name>`, components/control-node.ts): its spec found by kind
 * and name, started with a logger of its own, closed on SIGTERM.
 */
function controlProcessCommand<K extends 'witness' | 'photoSync'>(
  program: Command,
  command: string,
  kind: K,
  description: string,
  start: (o: {
    runDir: string;
    state: ClusterState;
    spec: SpecOf<K>;
    logger: import('pino').Logger;
  }) => Promise<{ close(): Promise<void> }>,
): void {
  program
    .command(command, { hidden: true })
    .description(description)
    .requiredOption('--run-dir <dir>')
    .requiredOption('--name <name>', 'its name in the topology')
    .action(async (o: { runDir: string; name: string }) => {
      const { createLogger } = await import('../platform/observability/logger.ts');
      const runDir = path.resolve(o.runDir);
      const state = loadState(runDir);
      const spec = processesOf(state.topology, kind).find((p) => (p as { name: string }).name === o.name) as
        | SpecOf<K>
        | undefined;
      if (!spec) throw new Error(`${state.topology.name} has no ${command} named ${o.name}`);
      const running = await start({
        runDir,
        state,
        spec,
        logger: createLogger('info', { service: command, topology: state.topology.name }),
      });
      closeOnSignal(() => running.close());
    });
}

/**
 * `scaleout dc status|failover|switchover`: the data centers of a multi-dc
 * topology, through its witness. `scaleout witness` is the witness itself
 * (started by `up`).
 */
export function dataCenterCommands(program: Command, root: string): void {
  controlProcessCommand(
    program,
    'witness',
    'witness',
    'The witness of the topology in --run-dir: fails the primary over between data centers (started by up)',
    async ({ runDir, spec, logger }) => {
      const { startWitness } = await import('../cluster/datacenter/witness.ts');
      return startWitness({
        runDir,
        listen: spec.listen,
        failoverAfterMs: spec.failoverAfterMs,
        automatic: spec.automatic,
        logger,
      });
    },
  );
  controlProcessCommand(
    program,
    'photo-sync',
    'photoSync',
    "A data center's photo sync in the topology in --run-dir: its photos to the other data center (started by up)",
    async ({ runDir, state, spec, logger }) => {
      const { startPhotoSync } = await import('../cluster/datacenter/photo-sync.ts');
      const { blobDirOf } = await import('../cluster/run/context.ts');
      const { readControlToken } = await import('../cluster/run/private.ts');
      const { dataCenterOf } = await import('../cluster/topology/select.ts');
      return startPhotoSync({
        dir: blobDirOf(state, dataCenterOf(state.topology, spec.name)),
        listen: spec.listen,
        peer: spec.peer,
        via: spec.via,
        token: readControlToken(runDir),
        logger,
      });
    },
  );

  const dc = program
    .command('dc')
    .description('The data centers of a multi-dc topology: which holds the primary, failover, switchover');
  dc.command('status')
    .description('Which data center holds the primary, which are fenced, what the witness sees, the last failovers')
    .option('--name <name>', 'the topology')
    .option('--json', 'machine-readable output')
    .action(async (o: { name?: string; json?: boolean }) => {
      const view = await callWitness<import('../cluster/datacenter/witness.ts').WitnessView>(
        pickState(root, o.name),
        'GET',
        '/status',
      );
      if (o.json) return void process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
      process.stdout.write(
        `primary: ${view.primary}${view.fenced.length ? `; fenced: ${view.fenced.join(', ')}` : ''}; ${view.synchronousAcross.on ? 'synchronous' : view.synchronousAcross.asked ? 'synchronous asked for, not in force (the standby does not stream)' : 'asynchronous'} across the data centers; ${view.automatic ? `fails over by itself after ${view.failoverAfterMs} ms unseen` : 'fails over when asked'}${view.busy ? `; now: ${view.busy}` : ''}\n`,
      );
      for (const [name, s] of Object.entries(view.seen))
        process.stdout.write(
          `  ${name}: ${s.primary ? 'has a primary' : 'no primary'}${s.streaming === undefined ? '' : s.streaming ? ', streaming from the primary' : ', not streaming'}\n`,
        );
      for (const e of view.events.slice(-5))
        process.stdout.write(`  ${e.at} ${e.kind} ${e.from} → ${e.to} (${e.reason}) in ${e.promotedMs ?? '?'} ms\n`);
    });
  dc.command('sync <on|off>')
    .description(
      "Synchronous across the data centers: the primary's commits wait for the standby data center (on while it streams)",
    )
    .option('--name <name>', 'the topology')
    .action(async (value: string, o: { name?: string }) => {
      if (value !== 'on' && value !== 'off') throw new Error('dc sync: on or off');
      await callWitness(pickState(root, o.name), 'POST', '/synchronous', { on: value === 'on' });
      process.stdout.write(
        `synchronous across the data centers: ${value} (the witness applies it at its next check, within a second)\n`,
      );
    });
  for (const kind of ['failover', 'switchover'] as const) {
    dc.command(kind)
      .description(
        kind === 'failover'
          ? 'Promote the standby data center now and fence the primary one (it rejoins as a standby, rewound)'
          : 'Move the primary to the standby data center losing no write: read-only, demotion token replayed, then promoted',
      )
      .option('--to <dataCenter>', 'the data center to promote (default: the other one)')
      .option('--name <name>', 'the topology')
      .option('--json', 'machine-readable output')
      .action(async (o: { to?: string; name?: string; json?: boolean }) => {
        const { event } = await callWitness<{ event: import('../cluster/run/state.ts').DataCenterEvent }>(
          pickState(root, o.name),
          'POST',
          `/${kind}`,
          o.to ? { to: o.to } : {},
        );
        if (o.json) return void process.stdout.write(`${JSON.stringify(event, null, 2)}\n`);
        process.stdout.write(
          `${kind} ${event.from} → ${event.to}: ${event.to} has a primary after ${event.promotedMs} ms${event.lsn ? ` (demotion token ${event.lsn})` : ''}\n`,
        );
      });
  }
}
