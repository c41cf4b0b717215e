import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BlobStore } from '../../ports/blobs.ts';

const safeKey = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_.-]+)*$/;

/**
 * Blobs as files under a root directory. Writes go to a temporary name and are
 * renamed into place, so a reader never sees half a file. The content type is
 * kept in a sidecar file.
 */
export function createFilesystemBlobStore(root: string): BlobStore {
  const file = (key: string) => {
    if (!safeKey.test(key) || key.split('/').some((part) => part === '..' || part === '.')) {
      throw new Error(`invalid blob key: ${key}`);
    }
    return path.join(root, key);
  };
  return {
    async put(key, data, contentType) {
      const target = file(key);
      await mkdir(path.dirname(target), { recursive: true });
      const tmp = `${target}.${process.pid}.${Date.now()}.tmp`;
      await writeFile(`${target}.type`, contentType);
      await writeFile(tmp, data);
      await rename(tmp, target);
    },
    async get(key) {
      const target = file(key);
      try {
        const [data, contentType] = await Promise.all([readFile(target), readFile(`${target}.type`, 'utf8')]);
        return { data, contentType };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    },
    async delete(...keys) {
      for (const key of keys) {
        const target = file(key);
        await rm(target, { force: true });
        await rm(`${target}.type`, { force: true });
      }
    },
    async ping() {
      await mkdir(root, { recursive: true });
      await stat(root);
    },
  };
}
