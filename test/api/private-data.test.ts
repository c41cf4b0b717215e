import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startApp, type TestApp } from '../support/app.ts';

const mode = (p: string) => statSync(p).mode & 0o777;

describe("the single server's data dir", () => {
  const dir = path.join(os.tmpdir(), `scaleout-private-${process.pid}-${Date.now()}`);
  let app: TestApp | undefined;
  afterAll(async () => {
    await app?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is the owner’s alone: the database and the secret cannot be read by another user', async () => {
    // Made world-readable beforehand, as a checkout's ./data may be.
    mkdirSync(dir, { mode: 0o755 });
    app = await startApp({}, dir);
    expect(mode(dir)).toBe(0o700);
    expect(mode(path.join(dir, 'pg'))).toBe(0o700);
    expect(mode(path.join(dir, 'secret'))).toBe(0o600);
    // As a user without privileges (root reads anything, so ask as nobody).
    const asNobody = spawnSync('runuser', ['-u', 'nobody', '--', 'ls', path.join(dir, 'pg')], { encoding: 'utf8' });
    expect(asNobody.status).not.toBe(0);
    expect(asNobody.stderr).toMatch(/Permission denied/);
  });
});
