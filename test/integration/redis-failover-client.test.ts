import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../src/bench/processes.ts';
import { startDelayProxy } from '../../src/cluster/components/delay-proxy/proxy.ts';
import { redisCall, redisCommand } from '../../src/cluster/components/redis/server.ts';
import { killHard, sleep, waitUntil } from '../../src/cluster/process.ts';
import { connectRedis, durableTierOptions } from '../../src/platform/redis/connect.ts';
import { sentinelMasterName as name, tierWithSentinel } from '../support/redis-sentinel.ts';

/**
 * A durable-tier client through Sentinel when its master fails, against a
 * real master, replica and Sentinel.
 *
 * A master killed: the Sentinel is reached through a proxy that delays each
 * way by 300 ms, so asking it where the master is takes about 2 s, and the
 * failover is forced (SENTINEL FAILOVER) the moment the client begins to ask:
 * its notice (`+switch-master`) reaches the client while it is asking.
 * ioredis' own failover detector cancelled that connect, and the client ended
 * for good: every command "Connection is closed.", no reconnect
 * (ioredis#1683). In a CI run it ended the web servers' session store after a
 * failover: 503 to every request from then on.
 *
 * A master that hangs: its socket stays open, so only the notice tells the
 * client to leave it.
 */
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

describe('a Sentinel client when its master fails', () => {
  it('a failover notice while it asks the Sentinel where the master is: it reaches the new master, and every command sent meanwhile succeeds there', async () => {
    const t = await tierWithSentinel({ downAfterMs: 60_000 });
    cleanup.push(t.stop);
    const slowSentinel = { host: t.host, port: await freePort() };
    const proxy = await startDelayProxy({ listen: slowSentinel, target: t.sentinelAt, delayMs: 300 });
    cleanup.push(() => proxy.close());
    const client = connectRedis({ sentinels: [slowSentinel], name, sentinelPassword: t.password }, durableTierOptions);
    cleanup.push(async () => client.disconnect());
    let ended = false;
    client.on('end', () => {
      ended = true;
    });
    await client.set('k', '0');
    expect(client.stream?.remotePort).toBe(t.port);
    // Its subscription to the Sentinel's failover notices is set up through the slow proxy too.
    await sleep(3000);

    // The Sentinel would see the death only after a minute: the failover is forced when the client asks.
    const asking = new Promise((resolve) => client.once('connecting', resolve));
    killHard(t.master.pid);
    await asking;
    expect(await redisCall({ ...t.sentinelAt, password: t.password }, 'SENTINEL', 'FAILOVER', name)).toBe('OK');
    // A write every 100 ms for 8 s: they wait for the new master (the durable tier's commands wait up to 10 s).
    const writes: Promise<unknown>[] = [];
    for (let i = 1; i <= 80; i++) {
      writes.push(client.set('k', String(i)));
      await sleep(100);
    }
    const results = await Promise.allSettled(writes);
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    expect(refused).toEqual([]);
    expect(ended).toBe(false);
    await waitUntil(async () => client.status === 'ready', 5000, 'the client is connected');
    expect(client.stream?.remotePort).toBe(t.replicaPort);
    expect(await redisCommand(t.host, t.replicaPort, 'GET', 'k')).toBe('80');
  }, 60_000);

  it('a master that hangs (a frozen process: its socket stays open): the notice moves the client to the new master, every command sent meanwhile succeeds there', async () => {
    const t = await tierWithSentinel({ downAfterMs: 1000 });
    cleanup.push(t.stop);
    const client = connectRedis({ sentinels: [t.sentinelAt], name, sentinelPassword: t.password }, durableTierOptions);
    cleanup.push(async () => client.disconnect());
    await client.set('k', '0');
    expect(client.stream?.remotePort).toBe(t.port);
    await sleep(500);

    process.kill(t.master.pid, 'SIGSTOP');
    cleanup.push(async () => {
      process.kill(t.master.pid, 'SIGCONT');
    });
    // The Sentinel calls it down after 1 s and promotes the replica; the writes wait (up to 10 s) meanwhile.
    const writes: Promise<unknown>[] = [];
    for (let i = 1; i <= 60; i++) {
      writes.push(client.set('k', String(i)));
      await sleep(100);
    }
    const results = await Promise.allSettled(writes);
    expect(results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []))).toEqual([]);
    expect(client.stream?.remotePort).toBe(t.replicaPort);
    expect(await redisCommand(t.host, t.replicaPort, 'GET', 'k')).toBe('60');
  }, 60_000);
});
