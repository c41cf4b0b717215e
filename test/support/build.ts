import { execFile } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const clones: string[] = [];

/**
 * A clone of this checkout (its node_modules linked) with one more commit: a
 * new version to deploy, or, with `change`, a build that differs by it (one
 * that cannot start, say). `removeBuilds` deletes every clone made.
 */
export async function makeBuild(change?: { file: string; append: string }): Promise<{ dir: string; version: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'scaleout-build-'));
  clones.push(dir);
  const run = (cwd: string, ...args: string[]) =>
    new Promise<string>((resolve, reject) =>
      execFile('git', ['-c', 'user.email=ci@scaleout', '-c', 'user.name=ci', ...args], { cwd }, (err, out) =>
        err ? reject(err) : resolve(out.trim()),
      ),
    );
  await run(root, 'clone', '-q', root, dir);
  symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  if (change) {
    const file = path.join(dir, change.file);
    appendFileSync(file, change.append);
    await run(dir, 'commit', '-qam', 'a build that cannot start');
  } else await run(dir, 'commit', '-q', '--allow-empty', '-m', 'the next version');
  return { dir, version: await run(dir, 'rev-parse', 'HEAD') };
}

/** A build whose web servers exit before they are ready. */
export const brokenBuild = () =>
  makeBuild({ file: 'src/runtime.ts', append: "\nthrow new Error('this build cannot start');\n" });

export function removeBuilds(): void {
  for (const c of clones.splice(0)) rmSync(c, { recursive: true, force: true });
}
