import { z } from 'zod';
import type { Component } from './component.ts';
import { dashboard, dashboardSpec } from './dashboard/index.ts';
import { dbProxy, dbProxySpec } from './db-proxy/index.ts';
import { delayProxy, delayProxySpec } from './delay-proxy/index.ts';
import { dnsHealth, dnsHealthSpec } from './dns/health-component.ts';
import { dns, dnsSpec } from './dns/index.ts';
import { etcd, etcdSpec } from './etcd/index.ts';
import { hostExporter, hostExporterSpec } from './host-exporter/index.ts';
import { loadBalancer, loadBalancerSpec } from './load-balancer/index.ts';
import { patroni, patroniSpec } from './patroni/index.ts';
import { photoSync, photoSyncSpec } from './photo-sync/index.ts';
import { postgres, postgresSpec } from './postgres/index.ts';
import { postgresExporter, postgresExporterSpec } from './postgres-exporter/index.ts';
import { prometheus, prometheusSpec } from './prometheus/index.ts';
import { redis, redisSpec } from './redis/index.ts';
import { redisExporter, redisExporterSpec } from './redis-exporter/index.ts';
import { redisSentinel, redisSentinelSpec } from './redis-sentinel/index.ts';
import { supervisor, supervisorSpec } from './supervisor/index.ts';
import { varnish, varnishSpec } from './varnish/index.ts';
import { varnishExporter, varnishExporterSpec } from './varnish-exporter/index.ts';
import { web, webSpec } from './web/index.ts';
import { witness, witnessSpec } from './witness/index.ts';
import { worker, workerSpec } from './worker/index.ts';

/**
 * Every kind of process a topology can have, registered here and nowhere
 * else: each kind is one folder beside this file, with its spec and its
 * Component. `up`, `down`, `restart`, `status`, Prometheus' targets and the
 * dashboard are loops over this list.
 */
const specs = () =>
  z.discriminatedUnion('kind', [
    webSpec,
    postgresSpec,
    etcdSpec,
    patroniSpec,
    dbProxySpec,
    loadBalancerSpec,
    redisSpec,
    redisSentinelSpec,
    redisExporterSpec,
    postgresExporterSpec,
    hostExporterSpec,
    prometheusSpec,
    dashboardSpec,
    supervisorSpec,
    varnishSpec,
    varnishExporterSpec,
    workerSpec,
    delayProxySpec,
    dnsSpec,
    dnsHealthSpec,
    witnessSpec,
    photoSyncSpec,
  ]);
let union: ReturnType<typeof specs> | undefined;
/**
 * The spec of any process, by its kind. Lazy, like the list below: the
 * components import the topology's helpers, which import this file, so
 * nothing here is read before every module has loaded.
 */
export const processSpec = z.lazy(() => {
  union ??= specs();
  return union;
});

// biome-ignore lint/suspicious/noExplicitAny: each component is typed by its own spec; the list holds them all
type AnyComponent = Component<any>;

const list = (): readonly AnyComponent[] => [
  web,
  postgres,
  etcd,
  patroni,
  dbProxy,
  loadBalancer,
  redis,
  redisSentinel,
  redisExporter,
  postgresExporter,
  hostExporter,
  prometheus,
  dashboard,
  supervisor,
  varnish,
  varnishExporter,
  worker,
  delayProxy,
  dns,
  dnsHealth,
  witness,
  photoSync,
];

let registered: readonly AnyComponent[] | undefined;
let byKind: Map<string, AnyComponent> | undefined;

/** Every component, in registry order. */
export function components(): readonly AnyComponent[] {
  registered ??= list();
  return registered;
}

/** The component of a process (by its kind). */
export function componentOf(p: { kind: string }): AnyComponent {
  byKind ??= new Map(components().map((c) => [c.kind, c]));
  const c = byKind.get(p.kind);
  if (!c) throw new Error(`no component of kind ${p.kind}`);
  return c;
}
