import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import Fastify, { type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import client from 'prom-client';
import { Pool } from 'undici';
import { createFilesystemBlobStore } from '../../platform/blobs/filesystem.ts';
import { hostPort } from '../components/component.ts';
import { sleep } from '../process.ts';
import { bearer, guardControlApi } from '../run/guard.ts';
import type { Address } from '../topology/address.ts';

export interface PhotoSyncOptions {
  /** This data center's photo store (originals and variants, with their content-type sidecars). */
  dir: string;
  /** Where the other data center's photo sync sends this one what it stored. */
  listen: Address;
  /** The other data center's photo sync: its own address (the Host it answers to), reached through `via`. */
  peer: Address;
  via: Address;
  token: string;
  logger: Logger;
  /** How often the store is walked for what the other data center lacks (ms). */
  everyMs?: number;
}

export interface PhotoSyncView {
  /** Keys this side knows the other has (pushed to it, or received from it). */
  known: number;
  /** Keys stored here that the other data center has not acknowledged yet. */
  pending: number;
  pushed: number;
  received: number;
  deletesSent: number;
  deletesReceived: number;
  /** Of the last pushes: from the file's write here to the other data center's acknowledgement (ms). */
  delayMs: { count: number; p50: number; p99: number; max: number };
  peerReachable: boolean;
  lastError: string | null;
}

/** Every blob key under `dir`: its files, not their `.type` sidecars nor a write's temporary file. */
async function keysUnder(dir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(dir, { recursive: true });
  } catch {
    return [];
  }
  const keys: string[] = [];
  for (const e of entries) {
    if (e.endsWith('.type') || e.endsWith('.tmp')) continue;
    const s = await stat(path.join(dir, e)).catch(() => null);
    if (s?.isFile()) keys.push(e.split(path.sep).join('/'));
  }
  return keys;
}

/** The store refuses a key that is no plain path under it (`..`, an absolute path): the sender's fault. */
const refusedKey = (err: unknown) => (err as Error).message.startsWith('invalid blob key');

const percentile = (sorted: number[], p: number) =>
  sorted.length ? (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number) : 0;

/**
 * Photos across two data centers, as S3 cross-region replication does it
 * (asynchronous, object by object, both ways): each data center writes its
 * photos to its own store; this process, one per data center, walks that
 * store every `everyMs` and sends the other data center's photo sync every
 * file it has not acknowledged (through the delayed link), and a delete for
 * every file it had and that is gone here. It stores what the other sends.
 * At its start (and whenever the other comes back) it asks the other for its
 * inventory, so that what was stored while one side was down crosses then.
 * What it measures: each push's delay, from the file's write to the other's
 * acknowledgement (`scaleout_photo_replication_seconds`).
 */
export async function startPhotoSync(o: PhotoSyncOptions): Promise<{ view(): PhotoSyncView; close(): Promise<void> }> {
  const every = o.everyMs ?? 250;
  const store = createFilesystemBlobStore(o.dir);
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const delayHistogram = new client.Histogram({
    name: 'scaleout_photo_replication_seconds',
    help: "From a photo file's write in this data center to the other data center's acknowledgement",
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 120],
    registers: [registry],
  });
  const pendingGauge = new client.Gauge({
    name: 'scaleout_photo_sync_pending',
    help: 'Photo files stored here that the other data center has not acknowledged',
    registers: [registry],
  });
  const counter = new client.Counter({
    name: 'scaleout_photo_sync_total',
    help: 'Photo files and deletes sent to and received from the other data center',
    labelNames: ['op'],
    registers: [registry],
  });

  const known = new Set<string>();
  /** Keys the receiver is writing or deleting now: the walk leaves them alone. */
  const receiving = new Set<string>();
  const recent: number[] = [];
  const totals = { pushed: 0, received: 0, deletesSent: 0, deletesReceived: 0 };
  let pending = 0;
  let peerReachable = false;
  let inventoryTaken = false;
  let lastError: string | null = null;

  const peer = new Pool(`http://${hostPort(o.via)}`, { connections: 4 });
  const peerHeaders = { ...bearer(o.token), host: hostPort(o.peer) };
  const keyPath = (key: string) => `/blobs/${key.split('/').map(encodeURIComponent).join('/')}`;

  const push = async (key: string): Promise<void> => {
    const file = path.join(o.dir, key);
    const [data, type, s] = await Promise.all([readFile(file), readFile(`${file}.type`, 'utf8'), stat(file)]).catch(
      () => [null, null, null] as const,
    );
    if (!data || type === null || !s) return; // deleted meanwhile: the next walk sends the delete
    const res = await peer.request({
      method: 'PUT',
      path: keyPath(key),
      headers: { ...peerHeaders, 'content-type': 'application/octet-stream', 'x-blob-type': type },
      body: data,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    await res.body.dump();
    if (res.statusCode !== 204) throw new Error(`PUT ${key}: HTTP ${res.statusCode}`);
    known.add(key);
    totals.pushed++;
    counter.inc({ op: 'pushed' });
    const ms = Date.now() - s.mtimeMs;
    delayHistogram.observe(ms / 1000);
    recent.push(ms);
    if (recent.length > 1000) recent.shift();
  };

  const removeAtPeer = async (key: string): Promise<void> => {
    const res = await peer.request({ method: 'DELETE', path: keyPath(key), headers: peerHeaders });
    await res.body.dump();
    if (res.statusCode !== 204) throw new Error(`DELETE ${key}: HTTP ${res.statusCode}`);
    known.delete(key);
    totals.deletesSent++;
    counter.inc({ op: 'deletes_sent' });
  };

  const takeInventory = async () => {
    const res = await peer.request({ method: 'GET', path: '/inventory', headers: peerHeaders });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`inventory: HTTP ${res.statusCode}`);
    }
    const { keys } = (await res.body.json()) as { keys: string[] };
    const here = new Set(await keysUnder(o.dir));
    known.clear();
    for (const k of keys) if (here.has(k)) known.add(k);
    inventoryTaken = true;
  };

  /** One walk: what the other lacks is sent, what is gone here is deleted there. */
  const pass = async () => {
    if (!inventoryTaken) await takeInventory();
    const local = await keysUnder(o.dir);
    const here = new Set(local);
    const toPush = local.filter((k) => !known.has(k) && !receiving.has(k));
    pending = toPush.length;
    pendingGauge.set(pending);
    for (let i = 0; i < toPush.length; i += 4) {
      await Promise.all(toPush.slice(i, i + 4).map(push));
      pending = Math.max(0, pending - 4);
      pendingGauge.set(pending);
    }
    for (const k of [...known]) {
      if (here.has(k) || receiving.has(k)) continue;
      // Received after the walk listed the store: still here.
      if (
        await stat(path.join(o.dir, k)).then(
          () => true,
          () => false,
        )
      )
        continue;
      await removeAtPeer(k);
    }
  };

  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      try {
        await pass();
        if (!peerReachable) o.logger.info({ known: known.size }, 'the other data center answers');
        peerReachable = true;
        lastError = null;
      } catch (err) {
        if (peerReachable || lastError === null)
          o.logger.warn({ err: (err as Error).message }, 'photo sync pass failed');
        // The other may have lost what it had not flushed, or come back empty: ask it again.
        peerReachable = false;
        inventoryTaken = false;
        lastError = (err as Error).message;
      }
      await sleep(Math.max(0, every - (Date.now() - started)));
    }
  })();

  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });
  guardControlApi(app, { token: o.token, listen: o.listen });
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  const keyOf = (params: unknown) => (params as { '*': string })['*'];
  /**
   * One change the other data center sent: `known` set as it will be, the store changed, the key left
   * alone by the walk meanwhile; a failed write puts `known` back. 204, or 400 for a key the store refuses.
   */
  const receive = async (
    reply: FastifyReply,
    key: string,
    op: 'received' | 'deletesReceived',
    change: () => Promise<void>,
  ) => {
    const stored = op === 'received';
    receiving.add(key);
    try {
      if (stored) known.add(key);
      else known.delete(key);
      await change();
    } catch (err) {
      if (stored) known.delete(key);
      return reply.code(refusedKey(err) ? 400 : 500).send({ error: (err as Error).message });
    } finally {
      receiving.delete(key);
    }
    totals[op]++;
    counter.inc({ op: stored ? 'received' : 'deletes_received' });
    return reply.code(204).send();
  };
  app.put('/blobs/*', async (req, reply) => {
    const type = req.headers['x-blob-type'];
    const body = req.body;
    if (typeof type !== 'string' || !Buffer.isBuffer(body))
      return reply.code(400).send({ error: 'a blob and its x-blob-type' });
    const key = keyOf(req.params);
    return receive(reply, key, 'received', () => store.put(key, body, type));
  });
  app.delete('/blobs/*', async (req, reply) => {
    const key = keyOf(req.params);
    return receive(reply, key, 'deletesReceived', () => store.delete(key));
  });
  app.get('/inventory', async () => ({ keys: await keysUnder(o.dir) }));
  const view = (): PhotoSyncView => {
    const sorted = [...recent].sort((a, b) => a - b);
    return {
      known: known.size,
      pending,
      ...totals,
      delayMs: {
        count: sorted.length,
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        max: sorted.at(-1) ?? 0,
      },
      peerReachable,
      lastError,
    };
  };
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/status', async () => view());
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  await app.listen({ host: o.listen.host, port: o.listen.port });
  o.logger.info({ dir: o.dir, listen: hostPort(o.listen), peer: hostPort(o.peer) }, 'photo sync started');
  return {
    view,
    async close() {
      stopped = true;
      await loop;
      await app.close();
      await peer.close();
    },
  };
}
