import { z } from 'zod';
import { compareInProcess, compareRedis, evictionTable, redisEvictionTable } from '../eviction.ts';
import { defineExperiment, flag } from '../experiment.ts';

export const eviction = defineExperiment({
  name: 'eviction',
  title:
    'hit ratios of LRU, LFU, FIFO and W-TinyLFU on a Zipf and a scan-heavy trace; Redis allkeys-lru vs allkeys-lfu',
  options: z.object({
    keys: flag.int(10_000, 'key space'),
    requests: flag.int(300_000, 'requests per trace'),
    redisRequests: flag.int(100_000, 'requests per trace against Redis'),
    maxmemory: z.string().default('4mb').describe('Redis maxmemory, below the working set'),
    valueBytes: flag.int(1024, 'size of each cached value in Redis'),
  }),
  async run(o) {
    const inProcess = compareInProcess(o.keys, o.requests);
    const redis = await compareRedis({
      keys: o.keys,
      requests: o.redisRequests,
      valueBytes: o.valueBytes,
      maxmemory: o.maxmemory,
    });
    return {
      data: { inProcess, redis },
      summary: `In process (${o.keys} keys, ${o.requests} requests per trace):\n\n${evictionTable(inProcess)}\n\nRedis (${o.keys} keys of ${o.valueBytes} B, ${o.redisRequests} requests per trace):\n\n${redisEvictionTable(redis)}`,
    };
  },
});
