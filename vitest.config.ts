import { defineConfig } from 'vitest/config';

/**
 * Test projects, each starting only the servers it needs:
 * - unit: none;
 * - contract: one real PostgreSQL server and one Redis (master + replica) for the run;
 * - api: none (each file starts embedded apps on PGlite);
 * - integration: one real PostgreSQL server;
 * - cluster: real topologies, one per test file (addresses from the fork's pool id), one file at a
 *   time and in a group of its own (no other project runs beside it): two topologies of ~30
 *   processes under load on two cores starve each other's health checks;
 * - e2e: headless Chromium against an embedded app.
 * `npm test` runs them all; `npm run test:fast` runs what needs no topology.
 */
const pg = 'test/support/global-postgres.ts';
const redis = 'test/support/global-redis.ts';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { extends: true, test: { name: 'contract', include: ['test/contract/**/*.test.ts'], globalSetup: [pg, redis] } },
      { extends: true, test: { name: 'api', include: ['test/api/**/*.test.ts'] } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'], globalSetup: [pg] } },
      {
        extends: true,
        test: {
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'] } },
    ],
  },
});
