import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DelayProxy, startDelayProxy } from '../../src/cluster/components/delay-proxy/proxy.ts';
import { type PhotoSyncView, startPhotoSync } from '../../src/cluster/datacenter/photo-sync.ts';
import { waitUntil } from '../../src/cluster/process.ts';
import { createFilesystemBlobStore } from '../../src/platform/blobs/filesystem.ts';
import { freePort } from '../support/addresses.ts';
import { tempDir } from '../support/temp.ts';

/**
 * Two data centers' photo syncs on loopback, each sending the other what
 * its store holds through a 20 ms delay proxy, as `multi-dc` runs them.
 */
describe('photo sync between two data centers', () => {
  const token = 'photo-sync-test-token';
  const delayMs = 20;
  let root: Awaited<ReturnType<typeof tempDir>>;
  const side = {} as Record<
    'a' | 'b',
    {
      dir: string;
      listen: { host: string; port: number };
      link: { host: string; port: number };
      sync?: Awaited<ReturnType<typeof startPhotoSync>>;
      proxy?: DelayProxy;
    }
  >;
  const other = (s: 'a' | 'b') => (s === 'a' ? 'b' : 'a');
  const start = async (s: 'a' | 'b') => {
    const me = side[s];
    const peer = side[other(s)];
    me.sync = await startPhotoSync({
      dir: me.dir,
      listen: me.listen,
      peer: peer.listen,
      via: me.link,
      token,
      logger: pino({ level: 'silent' }),
      everyMs: 100,
    });
  };
  const stop = async (s: 'a' | 'b') => {
    await side[s].sync?.close();
    side[s].sync = undefined;
  };
  const store = (s: 'a' | 'b') => createFilesystemBlobStore(side[s].dir);
  const has = (s: 'a' | 'b', key: string) => existsSync(path.join(side[s].dir, key));
  const view = (s: 'a' | 'b') => side[s].sync?.view() as PhotoSyncView;

  beforeAll(async () => {
    root = await tempDir('scaleout-photo-sync-');
    for (const s of ['a', 'b'] as const)
      side[s] = {
        dir: path.join(root.dir, s),
        listen: { host: '127.0.0.1', port: await freePort() },
        link: { host: '127.0.0.1', port: await freePort() },
      };
    for (const s of ['a', 'b'] as const)
      side[s].proxy = await startDelayProxy({ listen: side[s].link, target: side[other(s)].listen, delayMs });
    await start('a');
    await start('b');
  });
  afterAll(async () => {
    await stop('a');
    await stop('b');
    for (const s of ['a', 'b'] as const) await side[s].proxy?.close();
    await root?.remove();
  });

  it('a file stored in one data center reaches the other with its content type, after at least a round trip', async () => {
    await store('a').put('photos/p1/original', Buffer.from('the original'), 'image/png');
    await waitUntil(() => has('b', 'photos/p1/original'), 5000, 'p1 in b');
    expect((await store('b').get('photos/p1/original'))?.contentType).toBe('image/png');
    expect(await readFile(path.join(side.b.dir, 'photos/p1/original'), 'utf8')).toBe('the original');
    await waitUntil(() => view('a').pushed >= 1, 2000, "a's acknowledgement");
    expect(view('a').delayMs.max).toBeGreaterThanOrEqual(2 * delayMs);
    expect(view('b').received).toBe(1);
  });

  it('both ways, and what was received is not sent back', async () => {
    await store('b').put('photos/p2/thumb.webp', Buffer.from('thumb'), 'image/webp');
    await waitUntil(() => has('a', 'photos/p2/thumb.webp'), 5000, 'p2 in a');
    // Several walks later, neither side has sent the other's file back.
    await new Promise((r) => setTimeout(r, 500));
    expect(view('a')).toMatchObject({ pushed: 1, received: 1, pending: 0 });
    expect(view('b')).toMatchObject({ pushed: 1, received: 1, pending: 0 });
  });

  it('a delete in one data center deletes the file in the other', async () => {
    await store('a').delete('photos/p1/original');
    // The file leaves b before b's answer has crossed the 20 ms link back to a:
    // wait for a to count the delete it sent, which follows b's whole delete.
    await waitUntil(() => !has('b', 'photos/p1/original') && view('a').deletesSent === 1, 5000, 'p1 gone from b');
    expect(existsSync(path.join(side.b.dir, 'photos/p1/original.type'))).toBe(false);
    expect(view('a').deletesSent).toBe(1);
    expect(view('b').deletesReceived).toBe(1);
  });

  it('what is stored while the other data center is down crosses when it is back', async () => {
    await stop('b');
    await store('a').put('photos/p3/display.webp', Buffer.from('display'), 'image/webp');
    await new Promise((r) => setTimeout(r, 400));
    expect(has('b', 'photos/p3/display.webp')).toBe(false);
    expect(view('a').peerReachable).toBe(false);
    await start('b');
    await waitUntil(() => has('b', 'photos/p3/display.webp'), 5000, 'p3 in b after its return');
    // b, started again, knows from a's inventory what a has: it sends nothing back.
    await new Promise((r) => setTimeout(r, 400));
    expect(view('b').pushed).toBe(0);
  });

  it('answers only with the token, and only to its own address', async () => {
    const url = `http://${side.a.listen.host}:${side.a.listen.port}/inventory`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { keys: string[] }).keys.sort()).toEqual([
      'photos/p2/thumb.webp',
      'photos/p3/display.webp',
    ]);
    // A key that climbs out of the store is refused, and nothing is written.
    const bad = await fetch(`http://${side.a.listen.host}:${side.a.listen.port}/blobs/..%2F..%2Fescape`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'x-blob-type': 'x/y' },
      body: 'x',
    });
    expect(bad.status).toBe(400);
    expect(existsSync(path.join(root.dir, 'escape'))).toBe(false);
  });
});
