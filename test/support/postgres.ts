import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

/** A fresh, empty database on the test run's PostgreSQL server, and a function that drops it. */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const server = inject('postgres');
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({
    host: server.host,
    port: server.port,
    user: 'postgres',
    password: server.password,
    database: 'postgres',
  });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return {
    url: `postgres://postgres:${encodeURIComponent(server.password)}@${server.host}:${server.port}/${name}`,
    drop: async () => {
      const c = new pg.Client({
        host: server.host,
        port: server.port,
        user: 'postgres',
        password: server.password,
        database: 'postgres',
      });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
