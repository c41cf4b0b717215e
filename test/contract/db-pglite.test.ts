import { openPgliteDb } from '../../src/platform/db/pglite.ts';
import { tempDir } from '../support/temp.ts';
import { runDbContract } from './db.contract.ts';

runDbContract({
  name: 'PGlite on a data dir',
  create: async () => {
    const tmp = await tempDir();
    const db = await openPgliteDb(tmp.dir);
    return {
      db,
      cleanup: async () => {
        await db.close();
        await tmp.remove();
      },
    };
  },
});
