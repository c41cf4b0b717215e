import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../src/bench/processes.ts';
import {
  currentMaster,
  masterToFollow,
  promotableReplica,
  redisCall,
  redisCommand,
} from '../../src/cluster/components/redis/server.ts';
import { killHard, sleep, startProcess, stopProcess, waitUntil } from '../../src/cluster/process.ts';
import { redisMasterName } from '../../src/cluster/topology/select.ts';
import { connectRedis, durableTierOptions } from '../../src/platform/redis/connect.ts';
import { startTestRedis } from '../support/global-redis.ts';

/**
 * The master a killed Redis server follows when it is started again, against
 * a real master, replica and Sentinel. The Sentinel is slow on purpose
 * (down-after 3 s), so the server asks while the Sentinel still names it:
 * the window of a failover whose vote was split and is tried again.
 */
const tier = 'durable' as const;
const name = redisMasterName(tier);
let stop: (() => Promise<void>) | undefined;

afterEach(async () => {
  await stop?.();
  stop = undefined;
});

async function tierWithSentinel() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'scaleout-redis-restart-'));
  const host = `127.0.${40 + Math.floor(Math.random() * 200)}.${1 + Math.floor(Math.random() * 250)}`;
  const [port, replicaPort, sentinelPort] = [await freePort(), await freePort(), await freePort()];
  const password = randomBytes(12).toString('hex');
  const master = startTestRedis(dir, host, port, 'master');
  const replica = startTestRedis(dir, host, replicaPort, 'replica', ['--replica-announce-ip', host]);
  await waitUntil(async () => (await redisCommand(host, replicaPort, 'PING')) === 'PONG', 10_000);
  await redisCommand(host, replicaPort, 'REPLICAOF', host, String(port));
  const conf = path.join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `bind ${host}`,
      `port ${sentinelPort}`,
      `requirepass ${password}`,
      `dir ${dir}`,
      `sentinel announce-ip ${host}`,
      `sentinel monitor ${name} ${host} ${port} 1`,
      `sentinel down-after-milliseconds ${name} 3000`,
      `sentinel failover-timeout ${name} 3000`,
      '',
    ].join('\n'),
  );
  const sentinel = startProcess({
    command: '/usr/bin/redis-sentinel',
    args: [conf],
    log: path.join(dir, 'sentinel.log'),
    cwd: dir,
  });
  const sentinelAt = { host, port: sentinelPort };
  const sentinels = [{ listen: sentinelAt }] as never[];
  // The Sentinel has found the replica (from the master's INFO) and sees it up.
  await waitUntil(async () => {
    const role = (await redisCommand(host, replicaPort, 'ROLE')) as unknown[] | null;
    if (!Array.isArray(role) || role[3] !== 'connected') return false;
    return (await promotableReplica(sentinels, tier, password)) === true;
  }, 20_000);
  stop = async () => {
    for (const p of [sentinel, replica, master]) await stopProcess(p.pid, 5000);
    rmSync(dir, { recursive: true, force: true });
  };
  return { host, port, replicaPort, password, sentinelAt, sentinels, master, replica };
}

describe('a Redis master started again (the supervisor, 10 s after its death)', () => {
  it('while the Sentinel still names it and its replica is up: waits for the promotion and follows the replica', async () => {
    const t = await tierWithSentinel();
    killHard(t.master.pid);
    const self = { host: t.host, port: t.port };
    // The window: the Sentinel has not yet seen the death.
    expect(await currentMaster(t.sentinels, tier, t.password)).toEqual(self);
    const started = Date.now();
    const follow = await masterToFollow(self, t.sentinels, tier, t.password, { waitMs: 30_000 });
    const waited = Date.now() - started;
    console.log(`masterToFollow waited ${waited} ms for the Sentinel to promote the replica`);
    expect(follow).toEqual({ host: t.host, port: t.replicaPort });
    expect(waited).toBeGreaterThan(1000);
    const role = (await redisCommand(t.host, t.replicaPort, 'ROLE')) as unknown[];
    expect(role[0]).toBe('master');
  }, 60_000);

  it('with no replica that can take over: starts as the master once the Sentinel sees the replica down too', async () => {
    const t = await tierWithSentinel();
    killHard(t.replica.pid);
    killHard(t.master.pid);
    const self = { host: t.host, port: t.port };
    const started = Date.now();
    const follow = await masterToFollow(self, t.sentinels, tier, t.password, { waitMs: 30_000 });
    expect(follow).toBeNull();
    // Not the whole wait: as soon as the Sentinel flags the replica down (after down-after-milliseconds).
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 60_000);

  it("a live master demoted by a failover: the durable tier's client writes on, to the new master, none refused", async () => {
    const t = await tierWithSentinel();
    const client = connectRedis({ sentinels: [t.sentinelAt], name, sentinelPassword: t.password }, durableTierOptions);
    try {
      await client.set('k', '0');
      expect(client.stream?.remotePort).toBe(t.port);
      // The old master stays up and is made a replica of the new one, under the connected client.
      expect(await redisCall({ ...t.sentinelAt, password: t.password }, 'SENTINEL', 'FAILOVER', name)).toBe('OK');
      const refused: string[] = [];
      const deadline = Date.now() + 15_000;
      for (let i = 1; Date.now() < deadline && client.stream?.remotePort !== t.replicaPort; i++) {
        await client.set('k', String(i)).catch((err: Error) => refused.push(err.message));
        await sleep(20);
      }
      expect(client.stream?.remotePort).toBe(t.replicaPort);
      await client.set('k', 'after');
      expect(await redisCommand(t.host, t.replicaPort, 'GET', 'k')).toBe('after');
      expect(refused).toEqual([]);
    } finally {
      client.disconnect();
    }
  }, 60_000);
});
