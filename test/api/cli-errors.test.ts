import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The CLI with an empty run root: each error must name the flag that is wrong, before it looks for a topology. */
function cli(...args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(root, 'bin', 'scaleout.js'), ...args],
      { env: { ...process.env, SCALEOUT_RUN_ROOT: path.join(os.tmpdir(), `scaleout-none-${process.pid}`) } },
      (err, _stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
    );
  });
}

describe('CLI errors name the right flag', () => {
  it('deploy --ready-timeout abc', async () => {
    const r = await cli('deploy', '--ready-timeout', 'abc');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--ready-timeout: expected seconds from 1 to 600, got "abc"/);
  });

  it('autoscale --on --off, and a number that is not one', async () => {
    const both = await cli('autoscale', '--on', '--off');
    expect(both.code).not.toBe(0);
    expect(both.stderr).toMatch(/--on and --off/);
    const min = await cli('autoscale', '--min', 'two');
    expect(min.code).not.toBe(0);
    expect(min.stderr).toMatch(/--min: expected a number, got "two"/);
  });
});
