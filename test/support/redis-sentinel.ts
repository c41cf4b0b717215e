import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/bench/processes.ts';
import { promotableReplica, redisCommand } from '../../src/cluster/components/redis/server.ts';
import { startProcess, stopProcess, waitUntil } from '../../src/cluster/process.ts';
import { redisMasterName } from '../../src/cluster/topology/select.ts';
import { randomLoopbackHost } from './addresses.ts';
import { startTestRedis } from './global-redis.ts';

export const sentinelTier = 'durable' as const;
export const sentinelMasterName = redisMasterName(sentinelTier);

/**
 * A real Redis master, its replica and one Sentinel watching them (quorum 1),
 * on a loopback address of their own. `downAfterMs` is how long the Sentinel
 * waits before it calls the master down. `stop` stops all three and removes
 * their files.
 */
export async function tierWithSentinel(o: { downAfterMs: number }) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'scaleout-redis-sentinel-'));
  const host = randomLoopbackHost();
  const [port, replicaPort, sentinelPort] = [await freePort(), await freePort(), await freePort()];
  const password = randomBytes(12).toString('hex');
  const master = startTestRedis(dir, host, port, 'master');
  const replica = startTestRedis(dir, host, replicaPort, 'replica', ['--replica-announce-ip', host]);
  const name = sentinelMasterName;
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
      `sentinel down-after-milliseconds ${name} ${o.downAfterMs}`,
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
  const stop = async () => {
    for (const p of [sentinel, replica, master]) await stopProcess(p.pid, 5000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // The Sentinel has found the replica (from the master's INFO) and sees it up.
    await waitUntil(async () => {
      const role = (await redisCommand(host, replicaPort, 'ROLE')) as unknown[] | null;
      if (!Array.isArray(role) || role[3] !== 'connected') return false;
      return (await promotableReplica(sentinels, sentinelTier, password)) === true;
    }, 20_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host, port, replicaPort, password, sentinelAt, sentinels, master, replica, stop };
}
