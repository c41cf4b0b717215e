import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { httpStatus, type StartedProcess, startProcess, waitUntil } from '../process.ts';
import { allProcesses, type ProcessSpec, type Topology, webMetrics, webServers } from '../topology.ts';
import { requireBinaries } from './postgres.ts';

type Prometheus = Extract<ProcessSpec, { kind: 'prometheus' }>;

/** Where each kind of process serves Prometheus metrics. */
function scrapeTargets(p: ProcessSpec): { job: string; target: string } | null {
  switch (p.kind) {
    case 'web': {
      const m = webMetrics(p);
      return { job: 'web', target: `${m.host}:${m.port}` };
    }
    case 'loadBalancer':
    case 'dbProxy':
      return { job: 'haproxy', target: `${p.stats.host}:${p.stats.port}` };
    case 'etcd':
      return { job: 'etcd', target: `${p.client.host}:${p.client.port}` };
    case 'patroni':
      return { job: 'patroni', target: `${p.rest.host}:${p.rest.port}` };
    case 'prometheus':
      return { job: 'prometheus', target: `${p.listen.host}:${p.listen.port}` };
    case 'postgresExporter':
      return { job: 'postgres', target: `${p.listen.host}:${p.listen.port}` };
    case 'hostExporter':
      return { job: 'node', target: `${p.listen.host}:${p.listen.port}` };
    case 'redisExporter':
      return { job: 'redis', target: `${p.listen.host}:${p.listen.port}` };
    case 'supervisor':
      return { job: 'supervisor', target: `${p.listen.host}:${p.listen.port}` };
    case 'postgres':
    case 'dashboard':
    case 'redis':
    case 'redisSentinel':
      return null;
  }
}

/** A scrape config covering every process of the topology, labelled with the process name and role. */
export function prometheusConfig(t: Topology): string {
  const jobs = new Map<string, string[]>();
  for (const p of allProcesses(t)) {
    const s = scrapeTargets(p);
    // The web servers come and go (scaling, deploys): they are listed in a file of their own.
    if (!s || p.kind === 'web') continue;
    const entry = `      - targets: ['${s.target}']\n        labels: {process: '${p.name}', kind: '${p.kind}', topology: '${t.name}'}`;
    jobs.set(s.job, [...(jobs.get(s.job) ?? []), entry]);
  }
  const body = [...jobs]
    .map(
      ([job, entries]) =>
        `  - job_name: ${job}\n    metrics_path: /metrics\n    static_configs:\n${entries.join('\n')}`,
    )
    .join('\n');
  const web = `  - job_name: web\n    metrics_path: /metrics\n    file_sd_configs:\n      - files: ['${webTargetsFile}']\n        refresh_interval: 5s`;
  return `global:\n  scrape_interval: 2s\n  scrape_timeout: 1s\n  evaluation_interval: 5s\nscrape_configs:\n${web}\n${body}\n`;
}

/** Beside prometheus.yml: the web servers to scrape, rewritten whenever they change. */
const webTargetsFile = 'web-targets.json';

export function writeWebTargets(t: Topology, runDir: string): void {
  const prom = allProcesses(t).find((p) => p.kind === 'prometheus');
  if (!prom) return;
  const targets = webServers(t).map((w) => {
    const m = webMetrics(w);
    return { targets: [`${m.host}:${m.port}`], labels: { process: w.name, kind: 'web', topology: t.name } };
  });
  const file = path.join(runDir, prom.name, webTargetsFile);
  writeFileSync(`${file}.tmp`, JSON.stringify(targets, null, 2));
  renameSync(`${file}.tmp`, file);
}

export async function startPrometheus(t: Topology, spec: Prometheus, runDir: string): Promise<StartedProcess> {
  requireBinaries(['/usr/bin/prometheus'], 'prometheus');
  const dir = path.join(runDir, spec.name);
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  const config = path.join(dir, 'prometheus.yml');
  writeFileSync(config, prometheusConfig(t));
  writeWebTargets(t, runDir);
  const proc = startProcess({
    command: '/usr/bin/prometheus',
    args: [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=${spec.listen.host}:${spec.listen.port}`,
      '--storage.tsdb.retention.time=2d',
      '--log.level=warn',
    ],
    log: path.join(runDir, 'logs', `${spec.name}.log`),
    cwd: dir,
  });
  await waitUntil(async () => (await prometheusReady(spec)) === 200, 30_000, 'Prometheus ready');
  return proc;
}

export const prometheusReady = (spec: Prometheus) =>
  httpStatus(`http://${spec.listen.host}:${spec.listen.port}/-/ready`);
