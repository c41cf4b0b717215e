import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { postgresUser } from '../components/postgres/server.ts';

/**
 * Files of a run directory are the operator's: every file `up` or a server
 * writes there is 0600 and every directory 0700 (the umask), and the ones
 * that hold a secret are written 0600 explicitly as well. The one exception
 * is the run directory itself, 0710 with the postgres group where that user
 * exists: Patroni and PostgreSQL run as postgres and must pass through it to
 * their own 0700 directories; nobody else may even list it.
 */
export const privateUmask = 0o077;

/** From here on, what this process and its children create is theirs alone. */
export function keepPrivate(): void {
  process.umask(privateUmask);
}

/** A run directory only root (and, to pass through, the postgres group) can enter. */
export function makeRunDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const postgres = tryPostgresUser();
  if (postgres) {
    chownSync(dir, process.getuid?.() ?? 0, postgres.gid);
    chmodSync(dir, 0o710);
  } else chmodSync(dir, 0o700);
}

const tryPostgresUser = () => {
  try {
    return postgresUser();
  } catch {
    return null;
  }
};

/** Writes a file that holds a secret: 0600, owned by `owner` (the server that reads it) when given. */
export function writePrivate(file: string, content: string, owner?: { uid: number; gid: number }): void {
  writeFileSync(file, content, { mode: 0o600 });
  chmodSync(file, 0o600);
  if (owner) chownSync(file, owner.uid, owner.gid);
}

/** Where a run keeps its control token (the supervisor's API and the dashboard ask for it): 0600, root's. */
export const controlTokenFile = (runDir: string) => path.join(runDir, 'control.token');

export function writeControlToken(state: { runDir: string; secrets: { control: string } }): void {
  writePrivate(controlTokenFile(state.runDir), `${state.secrets.control}\n`);
}

/** The run's control token, read from its file (the CLI and the dashboard run as the operator, who can read it). */
export function readControlToken(runDir: string): string {
  try {
    return readFileSync(controlTokenFile(runDir), 'utf8').trim();
  } catch (err) {
    throw new Error(`cannot read the control token ${controlTokenFile(runDir)}: ${(err as Error).message}`);
  }
}
