import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { addFlags, addOptionFlags, type Experiment, flag, runExperiment } from '../bench/experiment.ts';
import { experiments } from '../bench/experiments/index.ts';
import { machine } from '../bench/report.ts';
import { seed } from '../bench/seed.ts';
import { defaultManifest, registerLoadCommands } from './load.ts';

/** `scaleout seed`'s options: its flags, defaults and help come from this schema. */
const seedOptions = z.object({
  target: z.url().describe('base URL, e.g. http://127.0.0.1:3000'),
  users: flag.int(51, 'accounts to create'),
  photos: flag.int(500, 'photos to upload'),
  follows: flag.int(50, 'how many users the viewer (user 0) follows'),
  seed: flag.int(1, 'seed of the random generator'),
});

/** The aliases whose --out was a JSON file (the others' was a directory). */
const legacyOutIsFile = new Set(['endpoints', 'eviction', 'start', 'topologies', 'failover']);

/** Runs an experiment, prints its summary, and copies results.json to `file` when one was asked for. */
async function runAndPrint(e: Experiment, flags: Record<string, unknown>, dir?: string, file?: string): Promise<void> {
  const { out, result } = await runExperiment(e, flags, { out: dir });
  process.stdout.write(
    `machine: ${machine()}\n\n${result.summary}\n\nreports: ${out}/results.json, summary.md, report.html\n`,
  );
  if (file) {
    await mkdir(path.dirname(path.resolve(file)), { recursive: true });
    await copyFile(path.join(out, 'results.json'), file);
  }
}

/** seed, `bench list`, `bench run <experiment>` and the bench-* aliases. */
export function benchCommands(program: Command): void {
  const bench = registerLoadCommands(program);
  // `bench --out` is the load's; `bench run <name> --out` the experiment's.
  bench.enablePositionalOptions();
  const seedCommand = program
    .command('seed')
    .description('Fill a running scaleout through its API with users, follows and photos (repeatable from --seed)');
  addOptionFlags(seedCommand, seedOptions);
  seedCommand
    .option('--out <file>', 'where to write the manifest (users, tokens, photo ids) that bench reads', defaultManifest)
    .action(async (flags: Record<string, unknown>) => {
      const { out, ...rest } = flags;
      const parsed = seedOptions.safeParse(rest);
      if (!parsed.success) throw new Error(`seed: ${z.prettifyError(parsed.error)}`);
      const manifest = await seed({ ...parsed.data, log: (line) => process.stderr.write(`${line}\n`) });
      if (typeof out === 'string') {
        await mkdir(path.dirname(path.resolve(out)), { recursive: true });
        await writeFile(out, JSON.stringify(manifest, null, 2));
      }
      process.stdout.write(`seeded ${manifest.users.length} users and ${manifest.photoIds.length} photos\n`);
    });

  for (const e of experiments) {
    // Today's bench-* commands, kept as aliases of `bench run <name>`: the commands in docs/benchmarks.md still run.
    const legacyOut = legacyOutIsFile.has(e.name) ? 'file' : 'dir';
    const alias = program
      .command(`bench-${e.name}`)
      .description(`${e.title} (the same as "scaleout bench run ${e.name}")`);
    addFlags(alias, e);
    alias.option(
      '--out <path>',
      legacyOut === 'file'
        ? 'also write the results as JSON to this file (the run directory is bench-out/<name>-<time>)'
        : "the run directory (results.json, summary.md, report.html and the runs' own reports)",
    );
    if (e.name === 'fsync') alias.option('--json <file>', 'also write the results as JSON');
    alias.action(async (o: Record<string, unknown>) => {
      const { out: legacy, json, ...flags } = o;
      const file = legacyOut === 'file' ? (legacy as string | undefined) : (json as string | undefined);
      const dir = legacyOut === 'dir' ? (legacy as string | undefined) : undefined;
      await runAndPrint(e, flags, dir, file);
    });
  }

  bench
    .command('list')
    .description('The experiments, each with what it measures')
    .action(() => {
      const width = Math.max(...experiments.map((e) => e.name.length));
      for (const e of experiments) process.stdout.write(`${e.name.padEnd(width)}  ${e.title}\n`);
      process.stdout.write('\nscaleout bench run <name> --help shows its options\n');
    });
  const run = bench.command('run').description('Run one experiment: scaleout bench run <name> [options]');
  for (const e of experiments) {
    const cmd = run.command(e.name).description(e.title);
    addFlags(cmd, e);
    cmd.option('--out <dir>', 'the run directory (default: bench-out/<name>-<time>)');
    cmd.action(async (o: Record<string, unknown>) => {
      const { out, ...flags } = o;
      await runAndPrint(e, flags, out as string | undefined);
    });
  }
}
