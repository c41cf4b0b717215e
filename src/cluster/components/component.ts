import type { z } from 'zod';
import type { ConfigInput } from '../../config.ts';
import type { StartedProcess } from '../process.ts';
import type { ClusterState } from '../run/state.ts';
import type { Address, Tier } from '../topology/address.ts';
import type { ProcessSpec, Topology } from '../topology/schema.ts';

/** What a process is, as `status` shows it. */
export interface Health {
  ok: boolean;
  /** What it does here: "leader", "replica", "master", "web server", … */
  role: string;
  detail?: string;
  lagBytes?: number | null;
  tier?: 'durable' | 'cache';
  version?: string;
  /** The Patroni cluster a database process belongs to, when its data center has several (shard clusters). */
  cluster?: string;
}

/**
 * The processes one start, restart or status call is about: the topology, the
 * run, and the scope of the process (its data center's processes, or the
 * global ones), with what the scope's providers give the processes that need
 * them (database URLs, Sentinels; later shard maps and edge URLs).
 */
export interface RunContext {
  state: ClusterState;
  topology: Topology;
  runDir: string;
  /** The data center of the process, or null for a global one. */
  dataCenter: string | null;
  /** The processes of that scope (a global process: every process of the topology). */
  scope: ProcessSpec[];
  /**
   * The environment of a web or worker process of this scope: what every
   * provider of the scope gives, rendered under config.ts's env names, and
   * the run's own extra settings.
   */
  appEnv(): Record<string, string>;
  /** `appEnv` with the process's role: a web server's, or a worker's. */
  siteEnv(kind: 'web' | 'worker'): Record<string, string>;
  /** True when the process is being started again (not by `up`): join what runs, rather than found it. */
  restarting: boolean;
  log(line: string): void;
  /** A value computed once per status call (a cluster's members, say), shared by every process that asks. */
  once<T>(key: string, compute: () => Promise<T>): Promise<T>;
}

/** One kind of process: everything the orchestrator, status, Prometheus and the dashboard need to know of it. */
export interface Component<S extends ProcessSpec = ProcessSpec> {
  kind: S['kind'];
  /** Its spec in a topology file (with `kind` and `name`). */
  spec: z.ZodType<S>;
  /** The chapter's tier it belongs to (the dashboard draws it there). */
  tier: Tier;
  /** Global (one for the topology) or one data center's. */
  scope: 'global' | 'dataCenter';
  /** Start order: lower stages start first, and a stage starts once the one before it is healthy. */
  stage: number;
  /**
   * Where users reach the site through it, when it can be the public endpoint
   * (an edge, a balancer, a lone web server): the first one along the chapter's
   * tiers (edge, then balancer, then web) is the site's URL.
   */
  publicUrl?(spec: S): string;
  /** Every address it binds (checked free before `up`). */
  addresses(spec: S): Address[];
  /**
   * What each address it binds asks of whoever connects. The operations
   * plane's rule: on one machine every local user reaches every 127.x address,
   * so nothing that changes anything or reads private data answers without
   * the topology's secrets. Every address of `addresses` is here (a test checks).
   */
  access(spec: S): { at: Address; guard: Guard }[];
  /** The address to show. */
  address(spec: S): string;
  /**
   * The processes of this kind in a scope, in the batches they start in:
   * each batch starts together, batches one after another. Default: one at a time.
   */
  batches?(specs: S[]): S[][];
  /** Starts one process and resolves once it is healthy. */
  start(spec: S, ctx: RunContext): Promise<StartedProcess>;
  /** After every process of this kind in a scope has started: wait until they work together. */
  ready?(specs: S[], ctx: RunContext): Promise<void>;
  health(spec: S, ctx: RunContext): Promise<Health>;
  /** Where Prometheus scrapes it; `dynamic`: listed in a file of its own that changes as the tier scales. */
  scrape?(spec: S): { job: string; target: string; dynamic?: boolean; needsToken?: boolean };
  /** Configuration it gives the web and worker processes of its scope, from the processes of its kind there. */
  provides?(specs: S[], ctx: RunContext): Partial<ConfigInput>;
  /**
   * For the process that runs a topology's start itself (the supervisor):
   * spawn it to do so. `up` then follows its progress in the state file.
   */
  launch?(spec: S, runDir: string): StartedProcess;
  /** What a process of this kind leaves running when it dies (Patroni's postmaster): stopped before a restart and by `down`. */
  leftovers?(spec: S, ctx: { runDir: string }): { name: string; pid: number; signal: NodeJS.Signals }[];
}

/**
 * - `public`: the site itself (its own authentication is the app's);
 * - `password`: nothing without the topology's password (Redis, Sentinel, PostgreSQL, etcd);
 * - `password-for-changes`: reads are open, every change needs the password (Patroni's REST API);
 * - `token`: the run's control token, its own Host, no cross-site request (the supervisor, the dashboard);
 * - `read-only`: metrics or status that neither change anything nor hold a secret;
 * - `peers`: a cluster's own peer port (etcd's), which takes no client requests.
 */
export type Guard = 'public' | 'password' | 'password-for-changes' | 'token' | 'read-only' | 'peers';

/** A component with its spec type inferred from its schema. */
export const defineComponent = <S extends ProcessSpec>(c: Component<S>): Component<S> => c;

/** `host:port`. */
export const hostPort = (a: Address): string => `${a.host}:${a.port}`;
