import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger, verifyLedger } from '../../src/bench/ledger.ts';
import { runBench, verifyRun } from '../../src/bench/run.ts';
import { type SeedManifest, seed } from '../../src/bench/seed.ts';
import { Client, pngImage, startApp, type TestApp } from '../support/app.ts';

let app: TestApp;
let manifest: SeedManifest;
let out: string;
beforeAll(async () => {
  app = await startApp();
  manifest = await seed({ target: app.url, users: 12, photos: 8, follows: 5, seed: 9 });
  out = await mkdtemp(path.join(os.tmpdir(), 'scaleout-bench-'));
}, 120_000);
afterAll(async () => {
  await app?.stop();
  await app?.remove();
  if (out) await rm(out, { recursive: true, force: true });
});

describe('bench, its reports and its write ledger', () => {
  it('runs the mixed scenario, writes the reports, and every acknowledged write verifies', async () => {
    const report = await runBench({
      target: app.url,
      scenario: 'mixed',
      rate: 40,
      seconds: 3,
      connections: 8,
      out,
      manifest,
    });
    expect(report.sent).toBe(120);
    expect(report.completed).toBe(120);
    expect(report.latencyMs.p99).toBeGreaterThan(0);
    expect(report.timeline.length).toBeGreaterThanOrEqual(3);
    expect(report.writesAcknowledged).toBeGreaterThan(0);
    const verified = await verifyRun(out);
    expect(verified.checked).toBe(report.writesAcknowledged);
    expect(verified.lost).toEqual([]);
    expect(verified.duplicated).toEqual([]);
    const { readFile } = await import('node:fs/promises');
    expect(JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')).latencyMs.p99).toBe(report.latencyMs.p99);
    expect(await readFile(path.join(out, 'summary.md'), 'utf8')).toContain('| throughput req/s |');
    expect(await readFile(path.join(out, 'report.html'), 'utf8')).toContain('new uPlot(');
  }, 60_000);

  it('reports a write that is missing, and one that is there twice', async () => {
    const ledger = new Ledger();
    // A follow that is really there.
    const c = new Client(app.url);
    c.token = manifest.tokens[2];
    expect((await c.request('PUT', `/api/v1/users/${manifest.users[4]}/follow`, { bearer: true })).status).toBe(204);
    ledger.add({ kind: 'follow', user: 2, followee: manifest.users[4] as string });
    // The same upload stored twice.
    c.cookies.clear();
    const form = () => {
      const f = new FormData();
      f.append('caption', 'once only');
      return f;
    };
    let id = '';
    for (let i = 0; i < 2; i++) {
      const f = form();
      f.append('file', new Blob([new Uint8Array(await pngImage())]), 'p.png');
      id = (await c.request('POST', '/api/v1/photos', { body: f, bearer: true })).body.photo.id;
    }
    ledger.add({ kind: 'upload', user: 2, photoId: id, caption: 'once only' });
    await c.waitForPhoto(id);
    // A like the server never got, on a photo nobody else has seen.
    ledger.add({ kind: 'like', user: 3, photoId: id });

    const report = await verifyLedger(ledger, manifest);
    expect(report.checked).toBe(3);
    expect(report.lost).toEqual([{ kind: 'like', user: 3, photoId: id }]);
    expect(report.duplicated).toEqual([{ kind: 'upload', user: 2, photoId: id, caption: 'once only' }]);
  }, 60_000);
});
