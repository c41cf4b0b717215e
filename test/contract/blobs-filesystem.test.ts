import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
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

describe('filesystem blobs: durability', () => {
  it('flushes the file, its content type and the directory to the disk before put returns', async () => {
    const tmp = await tempDir();
    const synced: string[] = [];
    const store = createFilesystemBlobStore(tmp.dir, { onSync: (p) => synced.push(path.relative(tmp.dir, p)) });
    try {
      await store.put('photos/abc/original', Buffer.from('bytes'), 'image/png');
      expect(synced).toContain('photos/abc/original.type');
      expect(synced.some((p) => /^photos\/abc\/original\.\d+\.\d+\.tmp$/.test(p))).toBe(true);
      expect(synced.at(-1)).toBe('photos/abc');
      expect((await store.get('photos/abc/original'))?.data.toString()).toBe('bytes');
    } finally {
      await tmp.remove();
    }
  });

  it('removes the directories a delete leaves empty, and only those', async () => {
    const tmp = await tempDir();
    const store = createFilesystemBlobStore(tmp.dir, { fsync: false });
    try {
      await store.put('photos/a/original', Buffer.from('a'), 'image/png');
      await store.put('photos/b/original', Buffer.from('b'), 'image/png');
      await store.delete('photos/a/original');
      expect(await readdir(path.join(tmp.dir, 'photos'))).toEqual(['b']);
      await store.delete('photos/b/original');
      expect(await readdir(tmp.dir)).toEqual([]);
    } finally {
      await tmp.remove();
    }
  });
});
