import { createFilesystemBlobStore } from '../../src/platform/blobs/filesystem.ts';
import { tempDir } from '../support/temp.ts';
import { runBlobContract } from './blobs.contract.ts';

runBlobContract({
  name: 'filesystem',
  create: async () => {
    const tmp = await tempDir();
    return { store: createFilesystemBlobStore(tmp.dir), cleanup: tmp.remove };
  },
});
