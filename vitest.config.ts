import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One real PostgreSQL server and one Redis (master + replica) for the run; each test file keeps to its own part.
    globalSetup: ['test/support/global-postgres.ts', 'test/support/global-redis.ts'],
  },
});
