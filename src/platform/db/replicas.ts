import { PostgresDriver } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { parseLsn } from './consistency.ts';
import { guardPool } from './errors.ts';

export interface ReplicaEndpoint {
  name: string;
  host: string;
  port: number;
}

/** Where the replicas are: a fixed list, or Patroni's cluster API. */
export interface ReplicaDiscovery {
  list(): Promise<ReplicaEndpoint[]>;
}

export function staticReplicas(urls: string[]): ReplicaDiscovery {
  const endpoints = urls.map((u, i) => {
    const url = new URL(u);
    return { name: `replica-${i + 1}`, host: url.hostname, port: Number(url.port || 5432) };
  });
  return { list: async () => endpoints };
}

/** Asks each Patroni REST API in turn for the members that are streaming replicas. */
export function patroniReplicas(patroniUrls: string[]): ReplicaDiscovery {
  return {
    async list() {
      for (const base of patroniUrls) {
        try {
          const res = await fetch(`${base.replace(/\/$/, '')}/cluster`, { signal: AbortSignal.timeout(1000) });
          if (!res.ok) continue;
          const body = (await res.json()) as {
            members?: { name: string; role: string; state: string; host: string; port: number }[];
          };
          return (body.members ?? [])
            .filter(
              (m) =>
                // A standby cluster's leader (another data center's copy) is a reader too.
                (m.role === 'replica' || m.role === 'sync_standby' || m.role === 'standby_leader') &&
                (m.state === 'streaming' || m.state === 'running'),
            )
            .map((m) => ({ name: m.name, host: m.host, port: m.port }));
        } catch {
          // try the next member's API
        }
      }
      throw new Error('no Patroni API answered');
    },
  };
}

export interface ReplicaState extends ReplicaEndpoint {
  healthy: boolean;
  replayLsn: string | null;
  lagBytes: number | null;
  reason?: string;
}

interface Tracked extends ReplicaState {
  pool: pg.Pool;
  driver: PostgresDriver;
}

export interface ReplicaSetOptions {
  discovery: ReplicaDiscovery;
  /** Credentials and database name; host and port come from each replica. */
  connectionString: string;
  /** The primary's current WAL position, to compute lag. */
  primaryLsn(): Promise<string>;
  maxLagBytes: number;
  intervalMs: number;
  poolSize: number;
  logger: Logger;
}

/** Whether a replica's last known replay position has reached `need`. */
const replayed = (r: { replayLsn: string | null }, need: bigint) => {
  const at = r.replayLsn ? parseLsn(r.replayLsn) : null;
  return at !== null && at >= need;
};

/**
 * The replicas reads may use. Every `intervalMs` it asks the discovery who
 * the replicas are, reads each one's replay position and the primary's
 * current position, and keeps only those that answer, are still in recovery
 * and lag less than `maxLagBytes`. A replica that fails a query is dropped at
 * once, before the next poll.
 */
export class ReplicaSet {
  readonly #replicas = new Map<string, Tracked>();
  readonly #options: ReplicaSetOptions;
  #timer: NodeJS.Timeout | undefined;
  #next = 0;
  #polling: Promise<void> | undefined;

  constructor(options: ReplicaSetOptions) {
    this.#options = options;
  }

  async start(): Promise<void> {
    await this.poll().catch((err) => this.#options.logger.warn({ err }, 'first replica poll failed'));
    this.#timer = setInterval(() => {
      this.#polling ??= this.poll()
        .catch((err) => this.#options.logger.warn({ err }, 'replica poll failed'))
        .finally(() => {
          this.#polling = undefined;
        });
    }, this.#options.intervalMs);
    this.#timer.unref();
  }

  /** A healthy replica that has replayed at least `minLsn`, round robin; undefined means "use the primary". */
  pick(minLsn?: string): { name: string; driver: PostgresDriver } | undefined {
    const need = minLsn ? parseLsn(minLsn) : null;
    const candidates = [...this.#replicas.values()].filter((r) => r.healthy && (need === null || replayed(r, need)));
    if (candidates.length === 0) return undefined;
    const r = candidates[this.#next++ % candidates.length] as Tracked;
    return { name: r.name, driver: r.driver };
  }

  /**
   * A healthy replica that has replayed `minLsn` by now, asked directly: its
   * last poll may predate the write (the primary would then take the read,
   * and during a failover there is none). Undefined when none has.
   */
  async pickCaughtUp(minLsn: string): Promise<{ name: string; driver: PostgresDriver } | undefined> {
    const need = parseLsn(minLsn);
    if (need === null) return undefined;
    for (const r of [...this.#replicas.values()].filter((x) => x.healthy)) {
      try {
        const res = await r.pool.query<{ lsn: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
        r.replayLsn = res.rows[0]?.lsn ?? r.replayLsn;
        if (replayed(r, need)) return { name: r.name, driver: r.driver };
      } catch {
        // Busy or gone: the primary takes the read, and the next poll judges the replica.
      }
    }
    return undefined;
  }

  markDown(name: string, reason: string): void {
    const r = this.#replicas.get(name);
    if (r?.healthy) {
      r.healthy = false;
      r.reason = reason;
      this.#options.logger.warn({ replica: name, reason }, 'replica taken out of reads');
    }
  }

  states(): ReplicaState[] {
    return [...this.#replicas.values()].map(({ pool: _p, driver: _d, ...state }) => state);
  }

  async poll(): Promise<void> {
    const endpoints = await this.#options.discovery.list();
    const seen = new Set(endpoints.map((e) => e.name));
    for (const [name, r] of this.#replicas) {
      if (!seen.has(name)) {
        this.#replicas.delete(name);
        void r.driver.destroy().catch(() => {});
      }
    }
    let primaryLsn: bigint | null = null;
    try {
      primaryLsn = parseLsn(await this.#options.primaryLsn());
    } catch {
      // No primary (a failover): judge replicas by whether they answer.
    }
    await Promise.all(
      endpoints.map(async (e) => {
        const r = this.#track(e);
        try {
          const client = await r.pool.connect();
          try {
            const res = await client.query<{ lsn: string | null; recovery: boolean }>(
              'SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_is_in_recovery() AS recovery',
            );
            const row = res.rows[0];
            r.replayLsn = row?.lsn ?? null;
            const replayed = r.replayLsn ? parseLsn(r.replayLsn) : null;
            r.lagBytes = primaryLsn !== null && replayed !== null ? Math.max(0, Number(primaryLsn - replayed)) : null;
            const wasHealthy = r.healthy;
            if (!row?.recovery) [r.healthy, r.reason] = [false, 'not in recovery (promoted?)'];
            else if (r.lagBytes !== null && r.lagBytes > this.#options.maxLagBytes)
              [r.healthy, r.reason] = [false, `lag ${r.lagBytes} bytes`];
            else [r.healthy, r.reason] = [true, undefined];
            if (wasHealthy !== r.healthy)
              this.#options.logger.info(
                { replica: r.name, healthy: r.healthy, reason: r.reason },
                'replica state changed',
              );
          } finally {
            client.release();
          }
        } catch (err) {
          this.markDown(r.name, (err as Error).message);
        }
      }),
    );
  }

  #track(e: ReplicaEndpoint): Tracked {
    const existing = this.#replicas.get(e.name);
    if (existing && existing.host === e.host && existing.port === e.port) return existing;
    if (existing) void existing.driver.destroy().catch(() => {});
    // pg lets the connection string win over host and port, so rewrite the string.
    const url = new URL(this.#options.connectionString);
    url.hostname = e.host;
    url.port = String(e.port);
    const pool = new pg.Pool({
      connectionString: url.toString(),
      max: this.#options.poolSize,
      connectionTimeoutMillis: 1000,
      idleTimeoutMillis: 30_000,
    });
    guardPool(pool, (err) => this.markDown(e.name, err.message));
    const tracked: Tracked = {
      ...e,
      healthy: false,
      replayLsn: null,
      lagBytes: null,
      pool,
      driver: new PostgresDriver({ pool }),
    };
    void tracked.driver.init();
    this.#replicas.set(e.name, tracked);
    return tracked;
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#polling;
    await Promise.all([...this.#replicas.values()].map((r) => r.driver.destroy().catch(() => {})));
    this.#replicas.clear();
  }
}
