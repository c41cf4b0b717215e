import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The git commit of the checkout this process runs (read from .git, no git
 * process), or 'unknown' outside a checkout. Web servers report it in
 * /healthz, so a deploy can see which version each one runs.
 */
export function codeVersion(dir = root): string {
  try {
    let gitDir = path.join(dir, '.git');
    const dotGit = readFileSync(gitDir, { encoding: 'utf8', flag: 'r' });
    // A worktree's .git is a file naming the real git dir.
    gitDir = path.resolve(dir, dotGit.replace(/^gitdir:\s*/, '').trim());
    return fromGitDir(gitDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EISDIR') return fromGitDir(path.join(dir, '.git'));
    return 'unknown';
  }
}

function fromGitDir(gitDir: string): string {
  try {
    const head = readFileSync(path.join(gitDir, 'HEAD'), 'utf8').trim();
    if (/^[0-9a-f]{40}$/.test(head)) return head;
    const ref = head.replace(/^ref:\s*/, '');
    try {
      return readFileSync(path.join(gitDir, ref), 'utf8').trim();
    } catch {
      const packed = readFileSync(path.join(gitDir, 'packed-refs'), 'utf8');
      const line = packed.split('\n').find((l) => l.endsWith(` ${ref}`));
      return line?.split(' ')[0] ?? 'unknown';
    }
  } catch {
    return 'unknown';
  }
}
