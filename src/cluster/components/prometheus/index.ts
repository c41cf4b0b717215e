import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import {
  httpStatus,
  isSameProcess,
  requireBinaries,
  type StartedProcess,
  startProcess,
  waitUntil,
} from '../../process.ts';
import { controlTokenFile } from '../../run/private.ts';
import type { ClusterState } from '../../run/state.ts';
import { address } from '../../topology/address.ts';
import type { ProcessSpec, Topology } from '../../topology/schema.ts';
import { allProcesses, dataCenterOf, processesOf } from '../../topology/select.ts';
import { defineComponent, hostPort } from '../component.ts';
import { componentOf } from '../registry.ts';

export const prometheusSpec = z.object({ kind: z.literal('prometheus'), name: z.string(), listen: address });
type Prometheus = z.infer<typeof prometheusSpec>;

type Target = { job: string; target: string; labels: Record<string, string>; needsToken: boolean };

/** What each process of the topology says of its metrics, labelled with its name, kind and data center. */
function targets(t: Topology, dynamic: boolean): Target[] {
  return allProcesses(t).flatMap((p: ProcessSpec) => {
    const s = componentOf(p).scrape?.(p as never);
    if (!s || Boolean(s.dynamic) !== dynamic) return [];
    const labels = { process: p.name, kind: p.kind, topology: t.name, dataCenter: dataCenterOf(t, p.name) ?? 'global' };
    return [{ job: s.job, target: s.target, labels, needsToken: Boolean(s.needsToken) }];
  });
}

/**
 * A scrape config covering every process of the topology. Processes that
 * come and go (web servers: scaling, deploys) are listed in a file of their
 * own per job, which Prometheus re-reads (file_sd).
 */
export function prometheusConfig(t: Topology, runDir: string): string {
  const yamlLabels = (l: Record<string, string>) =>
    `{${Object.entries(l)
      .map(([k, v]) => `${k}: '${v}'`)
      .join(', ')}}`;
  const jobs = new Map<string, string[]>();
  const withToken = new Set<string>();
  for (const s of targets(t, false)) {
    const entry = `      - targets: ['${s.target}']\n        labels: ${yamlLabels(s.labels)}`;
    jobs.set(s.job, [...(jobs.get(s.job) ?? []), entry]);
    if (s.needsToken) withToken.add(s.job);
  }
  // A control API's /metrics asks for the run's token, like its other routes: Prometheus reads it from its file.
  const auth = (job: string) =>
    withToken.has(job) ? `    authorization:\n      credentials_file: '${controlTokenFile(runDir)}'\n` : '';
  const fileJobs = [...new Set([...scaledJobs, ...targets(t, true).map((s) => s.job)])].map(
    (job) =>
      `  - job_name: ${job}\n    metrics_path: /metrics\n    file_sd_configs:\n      - files: ['${targetsFile(job)}']\n        refresh_interval: 5s`,
  );
  const body = [...jobs].map(
    ([job, entries]) =>
      `  - job_name: ${job}\n    metrics_path: /metrics\n${auth(job)}    static_configs:\n${entries.join('\n')}`,
  );
  return `global:\n  scrape_interval: 2s\n  scrape_timeout: 1s\n  evaluation_interval: 5s\nscrape_configs:\n${[...fileJobs, ...body].join('\n')}\n`;
}

/** The jobs of the tiers that scale: listed even while a tier has no process (workers scaled to 0). */
const scaledJobs = ['web', 'worker'];

/** Beside prometheus.yml: the processes of a job that come and go, rewritten whenever they change. */
const targetsFile = (job: string) => `${job}-targets.json`;

/** Rewrites the file of every job whose processes come and go (after scaling, a deploy). */
export function writeDynamicTargets(t: Topology, runDir: string): void {
  const [prom] = processesOf(t, 'prometheus');
  if (!prom) return;
  const all = targets(t, true);
  for (const job of new Set([...scaledJobs, ...all.map((s) => s.job)])) {
    const list = all.filter((s) => s.job === job).map((s) => ({ targets: [s.target], labels: s.labels }));
    const file = path.join(runDir, prom.name, targetsFile(job));
    writeFileSync(`${file}.tmp`, JSON.stringify(list, null, 2));
    renameSync(`${file}.tmp`, file);
  }
}

/**
 * After processes with static targets joined a running topology (a shard
 * cluster's exporters): the config written again, and Prometheus told to
 * read it (SIGHUP).
 */
export function reloadPrometheus(state: ClusterState): void {
  const [spec] = processesOf(state.topology, 'prometheus');
  const running = spec && state.processes.find((p) => p.name === spec.name);
  if (!spec || !running || !isSameProcess(running)) return;
  writeFileSync(path.join(state.runDir, spec.name, 'prometheus.yml'), prometheusConfig(state.topology, state.runDir), {
    mode: 0o600,
  });
  writeDynamicTargets(state.topology, state.runDir);
  process.kill(running.pid, 'SIGHUP');
}

export async function startPrometheus(t: Topology, spec: Prometheus, runDir: string): Promise<StartedProcess> {
  requireBinaries(['/usr/bin/prometheus'], 'prometheus');
  const dir = path.join(runDir, spec.name);
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  const config = path.join(dir, 'prometheus.yml');
  writeFileSync(config, prometheusConfig(t, runDir), { mode: 0o600 });
  const dashboard = processesOf(t, 'dashboard')[0];
  writeDynamicTargets(t, runDir);
  const proc = startProcess({
    command: '/usr/bin/prometheus',
    args: [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=${spec.listen.host}:${spec.listen.port}`,
      '--storage.tsdb.retention.time=2d',
      '--log.level=warn',
      // Its API answers the dashboard's page, and no other site's (the default is any origin).
      `--web.cors.origin=${dashboard ? `http://${hostPort(dashboard.listen).replaceAll('.', '\\.')}` : 'none'}`,
    ],
    log: path.join(runDir, 'logs', `${spec.name}.log`),
    cwd: dir,
  });
  await waitUntil(async () => (await prometheusReady(spec)) === 200, 30_000, 'Prometheus ready');
  return proc;
}

export const prometheusReady = (spec: Prometheus) => httpStatus(`http://${hostPort(spec.listen)}/-/ready`);

/** Prometheus: scrapes every process that has metrics, as each component says. */
export const prometheus = defineComponent<Prometheus>({
  kind: 'prometheus',
  spec: prometheusSpec,
  tier: 'observability',
  scope: 'global',
  stage: 80,
  addresses: (s) => [s.listen],
  access: (s) => [{ at: s.listen, guard: 'read-only' }],
  address: (s) => hostPort(s.listen),
  start: (s, ctx) => startPrometheus(ctx.topology, s, ctx.runDir),
  health: async (s) => ({ ok: (await prometheusReady(s)) === 200, role: 'metrics (Prometheus)' }),
  scrape: (s) => ({ job: 'prometheus', target: hostPort(s.listen) }),
});
