import { loadConfig } from '../../config.ts';
import { createBullmqQueue, siteQueuePrefix } from '../../platform/queue/bullmq.ts';
import { connectRedis, parseHostPorts, subscriberOptions } from '../../platform/redis/connect.ts';
import type { JobQueue } from '../../ports/queue.ts';
import { appConfig } from './context.ts';
import type { ClusterState } from './state.ts';

/**
 * The site's shared job queue (BullMQ on the durable Redis) as the workers
 * of a data center see it, for the operations plane: the supervisor reads
 * its depth, the dashboard its dead letter. It only looks and retries; it
 * runs no job. Undefined when the topology's jobs run in the web servers.
 */
export function openSiteQueue(state: ClusterState, dataCenter: string): JobQueue | undefined {
  if (state.topology.options.jobs !== 'workers') return undefined;
  const config = loadConfig({}, appConfig(state, dataCenter));
  if (!config.redisSentinels?.length) return undefined;
  const sentinels = parseHostPorts(config.redisSentinels);
  return createBullmqQueue({
    connect: () =>
      connectRedis(
        {
          sentinels,
          name: config.redisDurableName,
          password: config.redisPassword,
          sentinelPassword: config.redisSentinelPassword,
        },
        subscriberOptions,
      ),
    prefix: siteQueuePrefix,
    attempts: config.jobAttempts,
    backoffMs: config.jobBackoffMs,
  });
}
