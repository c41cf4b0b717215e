import { mkdir, open, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BlobStore } from '../../ports/blobs.ts';

const safeKey = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_.-]+)*$/;

/** Writes `data` to `file` and flushes it to the disk before returning. */
async function writeDurably(file: string, data: Buffer | string): Promise<void> {
  const handle = await open(file, 'w', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Flushes a directory's entries (a rename or a new file in it) to the disk. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Blobs as files under a root directory. Writes go to a temporary name and are
 * renamed into place, so a reader never sees half a file. The content type is
 * kept in a sidecar file. With `fsync` (the default), `put` returns only once
 * the file, its sidecar and the directory entries are on the disk, so an
 * acknowledged upload survives an OS crash. Deletes remove the directories
 * they leave empty.
 */
export function createFilesystemBlobStore(
  root: string,
  opts: { fsync?: boolean; onSync?: (path: string) => void } = {},
): BlobStore {
  const fsync = opts.fsync ?? true;
  const synced = (p: string) => opts.onSync?.(p);
  const file = (key: string) => {
    if (!safeKey.test(key) || key.split('/').some((part) => part === '..' || part === '.')) {
      throw new Error(`invalid blob key: ${key}`);
    }
    return path.join(root, key);
  };
  const write = fsync
    ? async (f: string, data: Buffer | string) => {
        await writeDurably(f, data);
        synced(f);
      }
    : (f: string, data: Buffer | string) => writeFile(f, data);
  /** Removes `dir` and its parents up to the root while they are empty. */
  const pruneEmpty = async (dir: string) => {
    const top = path.resolve(root);
    for (let d = path.resolve(dir); d.startsWith(`${top}${path.sep}`); d = path.dirname(d)) {
      try {
        await rmdir(d);
      } catch {
        return; // not empty, or already gone
      }
    }
  };
  return {
    async put(key, data, contentType) {
      const target = file(key);
      const dir = path.dirname(target);
      const tmp = `${target}.${process.pid}.${Date.now()}.tmp`;
      // A delete in the same directory may remove it as empty between mkdir and the write: then once more.
      for (let attempt = 1; ; attempt++) {
        await mkdir(dir, { recursive: true });
        try {
          await write(`${target}.type`, contentType);
          await write(tmp, data);
          await rename(tmp, target);
          if (fsync) {
            await syncDir(dir);
            synced(dir);
          }
          return;
        } catch (err) {
          await rm(tmp, { force: true });
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw err;
        }
      }
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
      const dirs = new Set<string>();
      for (const key of keys) {
        const target = file(key);
        await rm(target, { force: true });
        await rm(`${target}.type`, { force: true });
        dirs.add(path.dirname(target));
      }
      for (const dir of dirs) await pruneEmpty(dir);
    },
    async ping() {
      await mkdir(root, { recursive: true });
      await stat(root);
    },
  };
}
