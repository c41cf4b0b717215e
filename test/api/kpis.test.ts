import { describe, expect, it } from 'vitest';
import { Client, pngImage, useApp } from '../support/app.ts';

const app = useApp({ admins: 'boss_kpis' });

describe('business KPIs', () => {
  it('counts daily active users exactly, and signups, uploads and likes, for admins only', async () => {
    const boss = new Client(app.url);
    await boss.signUp('boss_kpis');
    await boss.logIn('boss_kpis');
    const before = (await boss.request('GET', '/api/v1/admin/kpis')).body.kpis;
    expect(before.day).toBe(new Date().toISOString().slice(0, 10));

    const a = await app.loggedIn();
    const b = await app.loggedIn();
    // Many requests by the same user on one day count once.
    for (let i = 0; i < 3; i++) await a.c.request('GET', '/api/v1/feed');
    const id = (await a.c.upload(await pngImage())).body.photo.id;
    await a.c.waitForPhoto(id);
    await b.c.request('PUT', `/api/v1/photos/${id}/like`);

    const after = (await boss.request('GET', '/api/v1/admin/kpis')).body.kpis;
    expect(after.dailyActiveUsers - before.dailyActiveUsers).toBe(2);
    expect(after.signups - before.signups).toBe(2);
    expect(after.uploads - before.uploads).toBe(1);
    expect(after.likes - before.likes).toBe(1);

    expect((await a.c.request('GET', '/api/v1/admin/kpis')).status).toBe(403);
    expect((await new Client(app.url).request('GET', '/api/v1/admin/kpis')).status).toBe(401);
    const metrics = (await new Client(app.url).request('GET', '/metrics')).body as string;
    expect(metrics).toMatch(/scaleout_daily_active_users \d+/);
    expect(Number(/scaleout_daily_active_users (\d+)/.exec(metrics)?.[1])).toBe(after.dailyActiveUsers);
  });
});
