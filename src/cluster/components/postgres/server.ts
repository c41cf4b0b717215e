import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { requireBinaries, type StartedProcess, startProcess, waitUntil } from '../../process.ts';
import { writePrivate } from '../../run/private.ts';

export const pgBin = '/usr/lib/postgresql/15/bin';

/** A directory the postgres user owns (data dirs must be 0700 and theirs). */
export function postgresDir(dir: string, mode = 0o700): string {
  mkdirSync(dir, { recursive: true });
  const { uid, gid } = postgresUser();
  chownSync(dir, uid, gid);
  chmodSync(dir, mode);
  return dir;
}

export function postgresUser(): { uid: number; gid: number } {
  const res = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gres = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error('no postgres system user: run "scaleout setup"');
  return { uid: Number(res.stdout.trim()), gid: Number(gres.stdout.trim()) };
}

export interface PostgresServerOptions {
  dir: string;
  host: string;
  port: number;
  superuserPassword: string;
  /** The addresses (CIDR) pg_hba lets in, with a password. */
  hbaSources: string[];
}

/** One PostgreSQL 15 server (the `db` preset): initdb once, then `postgres` as the postgres user. */
export async function startPostgresServer(o: PostgresServerOptions): Promise<StartedProcess> {
  requireBinaries([`${pgBin}/postgres`, `${pgBin}/initdb`], 'postgresql');
  // The postgres user's own directory inside ours (the run directory lets it pass, see private.ts).
  const dir = postgresDir(o.dir);
  const data = path.join(dir, 'data');
  const run = postgresDir(path.join(dir, 'run'));
  if (!existsSync(path.join(data, 'PG_VERSION'))) {
    postgresDir(data);
    const pwfile = path.join(run, 'pwfile');
    writePrivate(pwfile, o.superuserPassword, postgresUser());
    const init = spawnSync(
      'setpriv',
      [
        '--reuid=postgres',
        '--regid=postgres',
        '--init-groups',
        `${pgBin}/initdb`,
        '-D',
        data,
        '-U',
        'postgres',
        '--auth-local=trust',
        '--auth-host=scram-sha-256',
        `--pwfile=${pwfile}`,
        '-E',
        'UTF8',
      ],
      { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' } },
    );
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
    rmSync(pwfile);
    const hba = ['local all all trust', ...o.hbaSources.map((a) => `host all all ${a} scram-sha-256`)];
    writePrivate(path.join(data, 'pg_hba.conf'), `${hba.join('\n')}\n`, postgresUser());
  }
  const proc = startProcess({
    command: `${pgBin}/postgres`,
    args: [
      '-D',
      data,
      '-c',
      `listen_addresses=${o.host}`,
      '-c',
      `port=${o.port}`,
      '-c',
      `unix_socket_directories=${run}`,
      '-c',
      'shared_buffers=64MB',
      '-c',
      'max_connections=200',
      '-c',
      'fsync=on',
    ],
    log: path.join(dir, 'postgres.log'),
    user: 'postgres',
    cwd: run,
  });
  await waitUntil(
    async () => {
      const client = new pg.Client({
        host: o.host,
        port: o.port,
        user: 'postgres',
        password: o.superuserPassword,
        database: 'postgres',
      });
      client.on('error', () => {});
      await client.connect();
      await client.end();
      return true;
    },
    30_000,
    `PostgreSQL on ${o.host}:${o.port}`,
  );
  return proc;
}

/** The app's role and database on every PostgreSQL server of a topology. */
export const appUser = 'scaleout';
export const appDatabase = 'scaleout';

/** The URL the app connects with. */
export const appDatabaseUrl = (at: { host: string; port: number }, password: string): string =>
  `postgres://${appUser}:${password}@${at.host}:${at.port}/${appDatabase}`;

/** Creates the app's role and database if they are missing (idempotent). */
export async function ensureAppDatabase(
  admin: { host: string; port: number; password: string },
  app: { user: string; password: string; database: string },
): Promise<void> {
  const client = new pg.Client({
    host: admin.host,
    port: admin.port,
    user: 'postgres',
    password: admin.password,
    database: 'postgres',
  });
  client.on('error', () => {});
  await client.connect();
  try {
    const role = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [app.user]);
    if (role.rowCount === 0) {
      await client.query(
        `CREATE ROLE ${pg.escapeIdentifier(app.user)} LOGIN PASSWORD ${pg.escapeLiteral(app.password)}`,
      );
    }
    // The app's role can do what the app does, and no more: never a superuser.
    const powers = await client.query<{ rolsuper: boolean; rolcreaterole: boolean }>(
      'SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = $1',
      [app.user],
    );
    if (powers.rows[0]?.rolsuper || powers.rows[0]?.rolcreaterole) {
      throw new Error(`the app's role ${app.user} is a superuser or may create roles: refusing to start with it`);
    }
    const db = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [app.database]);
    if (db.rowCount === 0) {
      await client.query(`CREATE DATABASE ${pg.escapeIdentifier(app.database)} OWNER ${pg.escapeIdentifier(app.user)}`);
    }
  } finally {
    await client.end();
  }
}
