import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../src/bench/processes.ts';
import {
  currentMaster,
  masterToFollow,
  redisCall,
  redisCommand,
  startRedis,
} from '../../src/cluster/components/redis/server.ts';
import { killHard, sleep, stopProcess } from '../../src/cluster/process.ts';
import type { Topology } from '../../src/cluster/topology/schema.ts';
import { connectRedis, durableTierOptions } from '../../src/platform/redis/connect.ts';
import { randomLoopbackHost } from '../support/addresses.ts';
import {
  sentinelMasterName as name,
  sentinelTier as tier,
  tierWithSentinel as withSentinel,
} from '../support/redis-sentinel.ts';

/**
 * The master a killed Redis server follows when it is started again, against
 * a real master, replica and Sentinel. The Sentinel is slow on purpose
 * (down-after 3 s), so the server asks while the Sentinel still names it:
 * the window of a failover whose vote was split and is tried again.
 */
let stop: (() => Promise<void>) | undefined;

afterEach(async () => {
  await stop?.();
  stop = undefined;
});

async function tierWithSentinel() {
  const t = await withSentinel({ downAfterMs: 3000 });
  stop = t.stop;
  return t;
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

  it('a restart as a replica of a master still gone, promoted by the Sentinels at once: started, in the role they gave it', async () => {
    const runDir = mkdtempSync(path.join(os.tmpdir(), 'scaleout-redis-promoted-'));
    mkdirSync(path.join(runDir, 'logs'));
    const host = randomLoopbackHost();
    const spec = { kind: 'redis' as const, name: 'redis-durable-2', listen: { host, port: await freePort() }, tier };
    const password = 'secret-for-the-test';
    // The master it follows is dead (nothing listens there).
    const gone = { host, port: await freePort() };
    // What the Sentinels do when they find it: promote it, here as soon as it answers (a poll every 5 ms).
    let promoted = false;
    // Its PID from the server itself, so that it is stopped even when the start is not counted as one.
    let pid: number | undefined;
    const promote = (async () => {
      const deadline = Date.now() + 10_000;
      while (!promoted && Date.now() < deadline) {
        promoted = (await redisCall({ ...spec.listen, password }, 'REPLICAOF', 'NO', 'ONE')) === 'OK';
        await sleep(5);
      }
      const info = String(await redisCall({ ...spec.listen, password }, 'INFO', 'server'));
      pid = Number(/process_id:(\d+)/.exec(info)?.[1]) || undefined;
    })();
    const started = Date.now();
    try {
      await startRedis({} as Topology, spec, runDir, password, gone, { restarting: true });
      await promote;
      expect(promoted).toBe(true);
      expect(Date.now() - started).toBeLessThan(5000);
      expect(((await redisCall({ ...spec.listen, password }, 'ROLE')) as unknown[])[0]).toBe('master');
    } finally {
      await promote;
      if (pid) await stopProcess(pid, 5000);
      rmSync(runDir, { recursive: true, force: true });
    }
  }, 60_000);
});
