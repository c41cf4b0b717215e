import { rmSync } from 'node:fs';
import path from 'node:path';
import { forgetPatroniScope } from '../components/db-proxy/shard-map.ts';
import { patroniScope } from '../components/patroni/cluster.ts';
import { reloadPrometheus } from '../components/prometheus/index.ts';
import { componentOf } from '../components/registry.ts';
import { tcpOpen } from '../process.ts';
import { startAdded } from '../run/orchestrator.ts';
import { loadState, updateState } from '../run/state.ts';
import { maxShardClusters, shardCluster, shardClusterName } from '../topology/presets.ts';
import type { ProcessSpec } from '../topology/schema.ts';
import { firstDataCenter, planOf, processesOf, shardClustersOf } from '../topology/select.ts';

export interface AddClusterReport {
  cluster: string;
  /** The processes it started: the Patroni nodes, the proxy, an exporter per node. */
  processes: string[];
  ms: number;
}

/** The observability hosts of the PostgreSQL exporters (10…29; 30… are the Redis exporters'). */
const exporterHosts = { first: 10, last: 29 };

/**
 * Adds a Patroni cluster to a running sharded topology: its nodes (a
 * primary and `replicas`), its proxy and an exporter per node, started as
 * `up` starts them, then published in etcd beside the shard map, where every
 * running web server and worker finds it once the map places a logical
 * shard on it. It holds no logical shard until a move (`reshard rebalance`)
 * puts some there. On failure what it started is stopped and the topology is
 * as it was.
 */
export async function addShardCluster(
  runDir: string,
  o: { replicas?: number; log: (line: string) => void },
): Promise<AddClusterReport> {
  const started = Date.now();
  const state = loadState(runDir);
  const t = state.topology;
  const dataCenter = firstDataCenter(t);
  const existing = shardClustersOf(t, dataCenter);
  if (existing.length === 0) throw new Error(`${t.name} is not sharded: only preset sharded has shard clusters`);
  const index = Array.from({ length: maxShardClusters }, (_, i) => i).find(
    (i) => !existing.includes(shardClusterName(i)),
  );
  if (index === undefined) throw new Error(`${t.name} has ${maxShardClusters} shard clusters, the most it can have`);
  const cluster = shardClusterName(index);
  const plan = planOf(t);
  const scope = { dataCenter };
  const specs = shardCluster(plan, scope, index, o.replicas ?? 1);
  const used = new Set(processesOf(t, 'postgresExporter').map((e) => e.listen.host));
  const hosts: number[] = [];
  for (let h = exporterHosts.first; h <= exporterHosts.last && hosts.length < specs.length; h++) {
    if (!used.has(plan.ip(scope, 'observability', h))) hosts.push(h);
  }
  const nodes = specs.filter((s) => s.kind === 'patroni');
  if (hosts.length < nodes.length) throw new Error('no free address for the new nodes’ exporters');
  const exporters: ProcessSpec[] = nodes.map((n, i) => ({
    kind: 'postgresExporter',
    name: `${n.name}-exporter`,
    listen: plan.at(scope, 'observability', hosts[i] as number, 9187),
    server: n.name,
  }));
  const added = [...specs, ...exporters];
  const busy = (
    await Promise.all(
      added
        .flatMap((p) => componentOf(p).addresses(p))
        .map(async (a) => ((await tcpOpen(a.host, a.port, 300)) ? a : null)),
    )
  ).filter((a) => a !== null);
  if (busy.length > 0) throw new Error(`in use: ${busy.map((a) => `${a.host}:${a.port}`).join(', ')}`);

  o.log(`adding shard cluster ${cluster}: ${added.map((p) => p.name).join(', ')}`);
  // Into the topology first: the components find a cluster's nodes there (the proxy's config, the exporters).
  updateState(runDir, (s) => {
    const dc = s.topology.dataCenters.find((d) => d.name === dataCenter);
    if (!dc) return;
    const after = (kinds: string[], items: ProcessSpec[]) => {
      const at = dc.processes.findLastIndex((p) => kinds.includes(p.kind));
      dc.processes.splice(at + 1, 0, ...items);
    };
    after(['dbProxy'], specs);
    after(['postgresExporter'], exporters);
  });
  try {
    await startAdded(
      runDir,
      dataCenter,
      added.map((p) => p.name),
      o.log,
    );
  } catch (err) {
    const names = new Set(added.map((p) => p.name));
    updateState(runDir, (s) => {
      for (const dc of s.topology.dataCenters) dc.processes = dc.processes.filter((p) => !names.has(p.name));
      s.processes = s.processes.filter((p) => !names.has(p.name));
    });
    for (const p of added) rmSync(path.join(runDir, p.name), { recursive: true, force: true });
    const [etcd] = processesOf(t, 'etcd', scope);
    if (etcd) {
      await forgetPatroniScope(etcd, state.secrets.etcd, patroniScope(t, cluster)).catch((e: Error) =>
        o.log(`  could not forget ${cluster}'s Patroni keys in etcd: ${e.message}`),
      );
    }
    throw err;
  }
  reloadPrometheus(loadState(runDir));
  return { cluster, processes: added.map((p) => p.name), ms: Date.now() - started };
}
