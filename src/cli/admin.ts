import path from 'node:path';
import type { Command } from 'commander';
import { appConfig, stateOf } from '../cluster/run/index.ts';
import { firstDataCenter, webServers } from '../cluster/topology/index.ts';
import { loadConfig } from '../config.ts';
import { openAccounts } from '../runtime.ts';

interface Target {
  dataDir?: string;
  databaseUrl?: string;
  name?: string;
}

/** The database a command means: a data dir (embedded), a PostgreSQL URL, or a running topology's. */
function targetConfig(o: Target, root: string) {
  if (o.name) {
    const state = stateOf(root, o.name);
    if (!state) throw new Error(`no topology named ${o.name}`);
    const dc = firstDataCenter(state.topology);
    const { databaseUrl } = appConfig(state, dc);
    if (databaseUrl) return loadConfig({}, { db: 'postgres', databaseUrl });
    const [web] = webServers(state.topology, dc);
    return loadConfig({}, { dataDir: path.join(state.runDir, web?.name ?? 'web-1') });
  }
  if (o.databaseUrl) return loadConfig({}, { db: 'postgres', databaseUrl: o.databaseUrl });
  return loadConfig(process.env, { dataDir: o.dataDir });
}

/** `scaleout admin grant|revoke|list`: the operator names the admins; nobody becomes one by signing up. */
export function adminCommands(program: Command, root: string): void {
  const admin = program
    .command('admin')
    .description('Grant or revoke the admin role (reads the KPIs), or list the admins');
  const withTarget = (c: Command) =>
    c
      .option(
        '--data-dir <dir>',
        'the single server’s data dir (stop the server first; default SCALEOUT_DATA_DIR or ./data)',
      )
      .option('--database-url <url>', 'a PostgreSQL database (postgres://…)')
      .option('--name <name>', 'the database of a topology started with scaleout up');
  for (const [verb, role] of [
    ['grant', 'admin'],
    ['revoke', 'member'],
  ] as const) {
    withTarget(admin.command(verb).argument('<username>').description(`${verb} the admin role`)).action(
      async (username: string, o: Target) => {
        const accounts = await openAccounts(targetConfig(o, root));
        try {
          if (!(await accounts.setRole(username, role))) {
            process.stderr.write(`scaleout: no account named ${username}\n`);
            process.exitCode = 1;
            return;
          }
          process.stdout.write(`${username} is ${role === 'admin' ? 'an admin' : 'no longer an admin'}\n`);
        } finally {
          await accounts.close();
        }
      },
    );
  }
  withTarget(admin.command('list').description('the admins')).action(async (o: Target) => {
    const accounts = await openAccounts(targetConfig(o, root));
    try {
      for (const name of await accounts.admins()) process.stdout.write(`${name}\n`);
    } finally {
      await accounts.close();
    }
  });
}
