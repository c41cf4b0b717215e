import { createMemorySessionStore } from '../../src/platform/sessions/memory.ts';
import { runSessionContract } from './sessions.contract.ts';

// No reopen check: an in-memory store is lost at restart by design.
runSessionContract({
  name: 'memory',
  create: async (ttl) => {
    const store = createMemorySessionStore(ttl);
    return { store, userId: 'user-1', cleanup: () => store.close() };
  },
});
