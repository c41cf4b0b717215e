import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../src/ports/blobs.ts';

export interface BlobContractOptions {
  name: string;
  create(): Promise<{ store: BlobStore; cleanup(): Promise<void> }>;
}

/** What every BlobStore must do: the filesystem now, S3-compatible stores in deployments. */
export function runBlobContract(opts: BlobContractOptions): void {
  describe(`BlobStore contract: ${opts.name}`, () => {
    let store: BlobStore;
    let cleanup: () => Promise<void>;
    const prefix = `t${Math.random().toString(36).slice(2)}`;
    beforeAll(async () => {
      ({ store, cleanup } = await opts.create());
    });
    afterAll(async () => cleanup());

    it('stores bytes with their content type', async () => {
      const data = Buffer.from([0, 1, 2, 255, 254]);
      await store.put(`${prefix}/a/original`, data, 'image/jpeg');
      const got = await store.get(`${prefix}/a/original`);
      expect(got?.contentType).toBe('image/jpeg');
      expect(got?.data.equals(data)).toBe(true);
    });

    it('overwrites a key', async () => {
      await store.put(`${prefix}/b.webp`, Buffer.from('one'), 'image/webp');
      await store.put(`${prefix}/b.webp`, Buffer.from('two'), 'image/png');
      const got = await store.get(`${prefix}/b.webp`);
      expect(got?.data.toString()).toBe('two');
      expect(got?.contentType).toBe('image/png');
    });

    it('returns null for a missing key and deletes idempotently', async () => {
      expect(await store.get(`${prefix}/missing`)).toBeNull();
      await store.put(`${prefix}/c`, Buffer.from('x'), 'text/plain');
      await store.delete(`${prefix}/c`, `${prefix}/never`);
      expect(await store.get(`${prefix}/c`)).toBeNull();
      await store.delete(`${prefix}/c`);
    });

    it('refuses keys that could escape its namespace', async () => {
      for (const bad of ['../etc/passwd', `${prefix}/../x`, '/abs', '', `${prefix}//x`]) {
        await expect(store.put(bad, Buffer.from('x'), 'text/plain')).rejects.toThrow();
      }
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
