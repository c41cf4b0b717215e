import { createMemoryQueue } from '../../src/platform/queue/memory.ts';
import { runQueueContract } from './queue.contract.ts';

runQueueContract({
  name: 'in-process',
  create: async ({ attempts }) => createMemoryQueue({ attempts, backoffMs: 10 }),
});
