import { describe, expect, it } from 'vitest';
import { roles } from '../../src/runtime.ts';
import { startApp } from '../support/app.ts';

describe('process roles', () => {
  it('all runs the site and the jobs; web only the site; worker only the jobs', () => {
    expect(roles).toEqual({
      all: { site: true, jobs: true },
      web: { site: true, jobs: false },
      worker: { site: false, jobs: true },
    });
  });

  it('a web or worker process refuses to start on an in-process queue, which the other role could never see', async () => {
    for (const role of ['web', 'worker'] as const) {
      await expect(startApp({ role })).rejects.toThrow(/needs a job queue that web servers and workers share/);
    }
  });

  it('the single server (role all) serves the site and makes the variants', async () => {
    const app = await startApp({ role: 'all' });
    try {
      expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${app.url}/`)).status).toBe(200);
    } finally {
      await app.stop();
      await app.remove();
    }
  });
});
