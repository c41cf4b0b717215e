import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../components/web/process.ts';

const packageName = (dir: string): string | undefined => {
  try {
    return (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name;
  } catch {
    return undefined;
  }
};

/**
 * A checkout the supervisor may run as root: a directory with a git
 * repository of this project (its package.json names it, bin/scaleout.js is
 * there), owned by the operator (the user the supervisor runs as), and
 * neither it nor what it starts with writable by anyone else. Returns the
 * checkout's real path, or throws saying what is wrong.
 */
export function checkCheckout(dir: string, operator = process.getuid?.() ?? 0): string {
  if (!path.isAbsolute(dir)) throw new Error(`the checkout must be an absolute path: ${dir}`);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${dir} is not a directory`);
  const real = realpathSync(dir);
  const ours = packageName(projectRoot);
  if (!existsSync(path.join(real, '.git'))) throw new Error(`${dir} is not a git checkout`);
  if (!existsSync(path.join(real, 'bin', 'scaleout.js')) || packageName(real) !== ours) {
    throw new Error(`${dir} is not a scaleout checkout (no bin/scaleout.js, or its package.json is not "${ours}")`);
  }
  for (const file of [
    real,
    path.join(real, 'bin'),
    path.join(real, 'bin', 'scaleout.js'),
    path.join(real, 'package.json'),
  ]) {
    const s = statSync(file);
    if (s.uid !== operator) throw new Error(`${file} is owned by uid ${s.uid}, not by the operator (uid ${operator})`);
    if (s.mode & 0o022) throw new Error(`${file} is writable by others (mode ${(s.mode & 0o777).toString(8)})`);
  }
  return real;
}
