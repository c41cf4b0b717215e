import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const major = (version: string) => Number(version.replace(/^v/, '').split('.')[0]);
const systemNode = ['/usr/bin/node', '/usr/local/bin/node'].find(
  (bin) => existsSync(bin) && major(spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout) < 24,
);

describe('the Node.js runtime', () => {
  it('runs the tests on Node 24 LTS, the one the project installs', () => {
    expect(major(process.version)).toBe(24);
  });

  it.skipIf(!systemNode)('re-runs the scaleout command on the project Node when an older Node starts it', () => {
    const out = spawnSync(systemNode!, [path.join(root, 'bin', 'scaleout.js'), '--version'], { encoding: 'utf8' });
    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(/on Node\.js v24\./);
  });
});
