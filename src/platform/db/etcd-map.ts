import type { Logger } from 'pino';
import { logicalShards, type ShardMap } from '../../ports/shards.ts';
import { patroniReplicas } from './replicas.ts';
import { heldShardMap, type ShardClusterAddress, type ShardMapSource } from './sharded.ts';

/** Where the shard map lives in etcd, and who may read (or, for the mover, write) it. */
export interface EtcdTarget {
  /** http://host:port of an etcd member's client port (its JSON gateway). */
  endpoint: string;
  user: string;
  password: string;
  key: string;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/** A shard map as stored: checked, so a torn or foreign value never routes a query. */
export function parseShardMap(text: string): ShardMap {
  const v = JSON.parse(text) as Partial<ShardMap>;
  if (
    !Number.isInteger(v.version) ||
    !Array.isArray(v.clusters) ||
    v.clusters.length !== logicalShards ||
    !v.clusters.every((c) => typeof c === 'string' && /^[a-z0-9][a-z0-9-]{0,30}$/.test(c))
  ) {
    throw new Error('not a shard map');
  }
  return { version: v.version as number, clusters: v.clusters };
}

/** Where each shard cluster is, beside the map: written by `up` and by `scaleout reshard add-cluster`. */
export const shardClustersKey = (mapKey: string) => `${mapKey}/clusters`;

/** A shard cluster's proxy (host:port of its primary port) and its Patroni nodes' REST APIs; no credentials. */
export interface ShardClusterEndpoint {
  primary: string;
  rest: string[];
}

/** The clusters' endpoints as stored, checked. */
export function parseShardClusters(text: string): Record<string, ShardClusterEndpoint> {
  const v = JSON.parse(text) as Record<string, Partial<ShardClusterEndpoint>>;
  if (typeof v !== 'object' || v === null) throw new Error('not a list of shard clusters');
  for (const [name, e] of Object.entries(v)) {
    if (
      typeof e.primary !== 'string' ||
      !/^[\w.-]+:\d+$/.test(e.primary) ||
      !Array.isArray(e.rest) ||
      !e.rest.every((r) => typeof r === 'string' && /^https?:\/\//.test(r))
    ) {
      throw new Error(`not a shard cluster's endpoint: ${name}`);
    }
  }
  return v as Record<string, ShardClusterEndpoint>;
}

/**
 * Finds a shard cluster by name in etcd (one added after this process
 * started): its URL is `template`'s (the user, password and database every
 * shard cluster shares) at the cluster's proxy.
 */
export function etcdShardClusters(
  target: EtcdTarget,
  template: string,
): (name: string) => Promise<ShardClusterAddress | undefined> {
  const client = new EtcdClient(target);
  return async (name) => {
    const kv = await client.get(shardClustersKey(target.key));
    const endpoint = kv ? parseShardClusters(kv.value)[name] : undefined;
    if (!endpoint) return undefined;
    const url = new URL(template);
    url.host = endpoint.primary;
    return {
      name,
      url: url.toString(),
      replicas: endpoint.rest.length > 0 ? patroniReplicas(endpoint.rest) : undefined,
    };
  };
}

/** A client of etcd's v3 JSON gateway with a user's token (renewed when etcd says it expired). */
export class EtcdClient {
  readonly #target: EtcdTarget;
  #token: string | undefined;
  constructor(target: EtcdTarget) {
    this.#target = target;
  }
  async #authenticate(): Promise<string> {
    const res = await fetch(`${this.#target.endpoint}/v3/auth/authenticate`, {
      method: 'POST',
      body: JSON.stringify({ name: this.#target.user, password: this.#target.password }),
      signal: AbortSignal.timeout(2000),
    });
    const body = (await res.json()) as { token?: string; message?: string };
    if (!res.ok || !body.token) throw new Error(`etcd authentication failed: ${body.message ?? res.status}`);
    this.#token = body.token;
    return body.token;
  }
  async call<T>(path: string, body: unknown): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const token = this.#token ?? (await this.#authenticate());
      const res = await fetch(`${this.#target.endpoint}${path}`, {
        method: 'POST',
        headers: { authorization: token },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(2000),
      });
      const out = (await res.json()) as T & { message?: string };
      if (res.ok) return out;
      // An expired or unknown token: authenticate again, once.
      if (attempt === 0 && /token/i.test(out.message ?? '')) {
        this.#token = undefined;
        continue;
      }
      throw new Error(`etcd ${path}: ${out.message ?? res.status}`);
    }
  }
  /** The key's value and its modification revision; undefined when absent. */
  async get(key: string): Promise<{ value: string; modRevision: string } | undefined> {
    const r = await this.call<{ kvs?: { value: string; mod_revision: string }[] }>('/v3/kv/range', { key: b64(key) });
    const kv = r.kvs?.[0];
    return kv ? { value: unb64(kv.value), modRevision: kv.mod_revision } : undefined;
  }
  /** A lease of `ttlSeconds`: keys put under it go when it is revoked, or when nobody renews it in time. */
  async grantLease(ttlSeconds: number): Promise<string> {
    return (await this.call<{ ID: string }>('/v3/lease/grant', { TTL: ttlSeconds })).ID;
  }
  async renewLease(id: string): Promise<void> {
    await this.call('/v3/lease/keepalive', { ID: id });
  }
  async revokeLease(id: string): Promise<void> {
    await this.call('/v3/lease/revoke', { ID: id });
  }
  /** Puts `value` under `lease` only if the key is absent; false when someone holds it. */
  async createLeased(key: string, value: string, lease: string): Promise<boolean> {
    const r = await this.call<{ succeeded?: boolean }>('/v3/kv/txn', {
      compare: [{ key: b64(key), target: 'VERSION', result: 'EQUAL', version: '0' }],
      success: [{ request_put: { key: b64(key), value: b64(value), lease } }],
    });
    return r.succeeded === true;
  }
  /** Writes `value` only if the key is still at `modRevision` ('0': only if absent); false when it moved on. */
  async putIf(key: string, value: string, modRevision: string): Promise<boolean> {
    const compare =
      modRevision === '0'
        ? { key: b64(key), target: 'VERSION', result: 'EQUAL', version: '0' }
        : { key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: modRevision };
    const r = await this.call<{ succeeded?: boolean }>('/v3/kv/txn', {
      compare: [compare],
      success: [{ request_put: { key: b64(key), value: b64(value) } }],
    });
    return r.succeeded === true;
  }
}

/**
 * The shard map from etcd, read at start and then every `pollMs` (and at
 * once when a query finds its shard gone). A change reaches a process within
 * `pollMs`; the move's fence covers the gap: a write routed by an old map is
 * refused on the old cluster, and waits here for the new map.
 */
export async function etcdShardMap(
  target: EtcdTarget,
  opts: { pollMs?: number; logger: Logger },
): Promise<ShardMapSource> {
  const client = new EtcdClient(target);
  const read = async () => {
    const kv = await client.get(target.key);
    if (!kv) throw new Error(`no shard map at ${target.key} in etcd`);
    return parseShardMap(kv.value);
  };
  const held = heldShardMap(await read());
  const refresh = async () => {
    const before = held.current().version;
    if (held.set(await read())) opts.logger.info({ from: before, to: held.current().version }, 'shard map changed');
    return held.current();
  };
  let stopped = false;
  const timer = setInterval(() => {
    if (!stopped)
      refresh().catch((err) => opts.logger.warn({ err: (err as Error).message }, 'shard map: etcd read failed'));
  }, opts.pollMs ?? 250);
  timer.unref();
  return {
    current: held.current,
    changed: held.changed,
    refresh,
    close: async () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
