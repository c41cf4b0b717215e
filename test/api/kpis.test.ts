import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Client, pngImage, startApp, type TestApp } from '../support/app.ts';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'scaleout.js');
const admin = (...args: string[]) =>
  spawnSync(process.execPath, [cli, 'admin', ...args], { encoding: 'utf8', env: { ...process.env } });

let app: TestApp | undefined;
afterAll(async () => {
  await app?.stop();
  await app?.remove();
});

describe('business KPIs', () => {
  it('are for admins that an operator named: signing up under a name makes nobody an admin', async () => {
    app = await startApp();
    const boss = new Client(app.url);
    await boss.signUp('boss_kpis');
    await boss.logIn('boss_kpis');
    expect((await boss.request('GET', '/api/v1/admin/kpis')).status).toBe(403);

    // The operator grants the role; an embedded database only while no server runs on it.
    expect(admin('grant', 'boss_kpis', '--data-dir', app.dataDir).stderr).toMatch(/in use by process/);
    const dataDir = app.dataDir;
    await app.stop();
    const granted = admin('grant', 'boss_kpis', '--data-dir', dataDir);
    expect(granted.status, granted.stderr).toBe(0);
    expect(admin('grant', 'nobody_here_at_all', '--data-dir', dataDir).status).toBe(1);
    expect(admin('list', '--data-dir', dataDir).stdout.trim()).toBe('boss_kpis');
    app = { ...(await startApp({}, dataDir)), remove: app.remove };
    boss.base = app.url;
    // The session survived the restart (sessions are in the database).
    expect((await boss.request('GET', '/api/v1/admin/kpis')).status).toBe(200);
  });

  it('counts daily active users exactly, and signups, uploads and likes', async () => {
    if (!app) throw new Error('the first test starts the app');
    const boss = new Client(app.url);
    await boss.logIn('boss_kpis');
    const before = (await boss.request('GET', '/api/v1/admin/kpis')).body.kpis;
    expect(before.day).toBe(new Date().toISOString().slice(0, 10));

    const a = new Client(app.url);
    await a.logIn(await a.signUp());
    const b = new Client(app.url);
    await b.logIn(await b.signUp());
    // Many requests by the same user on one day count once.
    for (let i = 0; i < 3; i++) await a.request('GET', '/api/v1/feed');
    const id = (await a.upload(await pngImage())).body.photo.id;
    await a.waitForPhoto(id);
    await b.request('PUT', `/api/v1/photos/${id}/like`);

    const after = (await boss.request('GET', '/api/v1/admin/kpis')).body.kpis;
    expect(after.dailyActiveUsers - before.dailyActiveUsers).toBe(2);
    expect(after.signups - before.signups).toBe(2);
    expect(after.uploads - before.uploads).toBe(1);
    expect(after.likes - before.likes).toBe(1);

    expect((await a.request('GET', '/api/v1/admin/kpis')).status).toBe(403);
    expect((await new Client(app.url).request('GET', '/api/v1/admin/kpis')).status).toBe(401);
    // The same figures on the private metrics listener, not on the public port.
    expect((await new Client(app.url).request('GET', '/metrics')).status).toBe(404);
    const metrics = await (await fetch(`${app.runtime.metricsUrl()}/metrics`)).text();
    expect(Number(/scaleout_daily_active_users (\d+)/.exec(metrics)?.[1])).toBe(after.dailyActiveUsers);
  });
});
