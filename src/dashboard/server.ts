import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { killDataCenter } from '../cluster/datacenter/kill.ts';
import { isAlive, isSameProcess, killHard } from '../cluster/process.ts';
import { guardControlApi } from '../cluster/run/guard.ts';
import { type ClusterState, restart, stateOf } from '../cluster/run/index.ts';
import { openSiteQueue } from '../cluster/run/jobs.ts';
import { readControlToken } from '../cluster/run/private.ts';
import { status } from '../cluster/run/status.ts';
import { callSupervisor, supervisorOf } from '../cluster/supervisor/client.ts';
import { allProcesses } from '../cluster/topology/index.ts';
import { firstDataCenter } from '../cluster/topology/select.ts';
import type { JobQueue } from '../ports/queue.ts';
import { dashboardPage } from './page.ts';
import { charts } from './queries.ts';

export interface DashboardOptions {
  runRoot: string;
  name: string;
  host: string;
  port: number;
  /** The token it asks for; default: the run's control token (control.token in its run directory). */
  token?: string;
}

interface Series {
  label: string;
  values: (number | null)[];
}

/** Asks Prometheus for one chart over the last `seconds`, as aligned series. */
async function chartData(promUrl: string, key: string, seconds: number): Promise<{ t: number[]; series: Series[] }> {
  const chart = charts[key];
  if (!chart) throw new Error(`no chart ${key}`);
  const end = Math.floor(Date.now() / 1000);
  const start = end - seconds;
  const step = 2;
  const t: number[] = [];
  for (let x = start; x <= end; x += step) t.push(x);
  const series: Series[] = [];
  for (const [name, query] of Object.entries(chart.queries)) {
    const url = `${promUrl}/api/v1/query_range?query=${encodeURIComponent(query)}&start=${start}&end=${end}&step=${step}`;
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as {
      data?: { result?: { metric: Record<string, string>; values: [number, string][] }[] };
    };
    for (const r of body.data?.result ?? []) {
      const byTime = new Map(r.values.map(([ts, v]) => [Math.round(ts), Number(v)]));
      const extra = Object.values(r.metric).join(' ');
      series.push({
        label: extra ? `${name} ${extra}` : name,
        values: t.map((x) => {
          const v = byTime.get(x);
          return v === undefined || !Number.isFinite(v) ? null : v;
        }),
      });
    }
  }
  return { t, series };
}

/**
 * The dashboard of one running topology: its live processes with kill and
 * restart buttons, and charts from its Prometheus.
 */
export async function buildDashboard(opts: DashboardOptions): Promise<{ app: FastifyInstance; token: string }> {
  const load = (): ClusterState => {
    const state = stateOf(opts.runRoot, opts.name);
    if (!state) throw new Error(`no topology named ${opts.name}`);
    return state;
  };
  const prom = allProcesses(load().topology).find((p) => p.kind === 'prometheus');
  const promUrl = prom?.kind === 'prometheus' ? `http://${prom.listen.host}:${prom.listen.port}` : null;
  const token = opts.token ?? readControlToken(load().runDir);
  const require = createRequire(import.meta.url);
  const uplotDir = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
  const [uplotJs, uplotCss] = await Promise.all([
    readFile(path.join(uplotDir, 'uPlot.iife.min.js'), 'utf8'),
    readFile(path.join(uplotDir, 'uPlot.min.css'), 'utf8'),
  ]);

  const app = Fastify({ logger: false });
  // Every route, on loopback too: the run's token (the page keeps it in a cookie), its own Host, no other site.
  guardControlApi(app, { token, listen: { host: opts.host, port: opts.port }, page: true });
  app.addHook('onRequest', async (req, reply) => {
    // Actions need a custom header, which no cross-site form can send.
    if (req.method === 'POST' && req.headers['x-dashboard'] !== '1')
      return reply.code(403).send({ error: 'missing x-dashboard header' });
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('x-frame-options', 'DENY').header('cache-control', 'no-store');
    return payload;
  });

  app.get('/', async (_req, reply) =>
    reply.type('text/html; charset=utf-8').send(
      dashboardPage(
        opts.name,
        Object.entries(charts).map(([k, c]) => ({ key: k, title: c.title, unit: c.unit })),
        uplotCss,
      ),
    ),
  );
  app.get('/uplot.js', async (_req, reply) => reply.type('text/javascript').send(uplotJs));
  app.get('/api/topology', async () => {
    const state = load();
    return {
      name: state.topology.name,
      preset: state.topology.preset,
      publicUrl: state.publicUrl,
      processes: await status(state),
    };
  });
  app.get('/api/charts/:key', async (req, reply) => {
    if (!promUrl) return reply.code(404).send({ error: 'this topology has no Prometheus' });
    const { key } = req.params as { key: string };
    if (!charts[key]) return reply.code(404).send({ error: 'no such chart' });
    const seconds = Math.min(3600, Math.max(30, Number((req.query as { seconds?: string }).seconds ?? 300)));
    return chartData(promUrl, key, seconds);
  });
  // The dead letter of the shared queue (preset queue), each data center's (its own Redis and workers): a look,
  // and a retry, never a job run here.
  const queues = new Map<string, JobQueue | undefined>();
  const queueOf = (dc: string) => {
    if (!queues.has(dc)) queues.set(dc, openSiteQueue(load(), dc));
    return queues.get(dc);
  };
  const dataCentersOf = () => load().topology.dataCenters.map((d) => d.name);
  app.addHook('onClose', async () => {
    await Promise.all([...queues.values()].map((q) => q?.close()));
  });
  app.get('/api/jobs/failed', async (_req, reply) => {
    const withQueue = dataCentersOf().filter((dc) => queueOf(dc));
    if (withQueue.length === 0) return reply.code(404).send({ error: 'this topology has no shared job queue' });
    const each = await Promise.all(
      withQueue.map(async (dc) => ((await queueOf(dc)?.failed(50)) ?? []).map((job) => ({ ...job, dataCenter: dc }))),
    );
    return { jobs: each.flat().sort((a, b) => b.failedAt - a.failedAt) };
  });
  // `dataCenter` names the queue (job ids are each queue's own); the first data center's when it is left out.
  app.post('/api/jobs/:id/retry', async (req, reply) => {
    const dc = (req.query as { dataCenter?: string }).dataCenter ?? firstDataCenter(load().topology);
    if (!dataCentersOf().includes(dc)) return reply.code(404).send({ error: `no data center ${dc}` });
    const q = queueOf(dc);
    if (!q) return reply.code(404).send({ error: 'this topology has no shared job queue' });
    const { id } = req.params as { id: string };
    if (!(await q.retry(id))) return reply.code(404).send({ error: `no failed job ${id}` });
    return { retried: id, dataCenter: dc };
  });
  app.post('/api/processes/:name/kill', async (req, reply) => {
    const state = load();
    const p = state.processes.find((x) => x.name === (req.params as { name: string }).name);
    if (!p) return reply.code(404).send({ error: 'no such process' });
    if (p.kind === 'prometheus') return reply.code(400).send({ error: 'the dashboard needs Prometheus' });
    // Only the process recorded: a PID whose start time differs is another process now (PIDs are reused).
    if (!isSameProcess(p)) return reply.code(409).send({ error: `${p.name} is not running (pid ${p.pid} is not it)` });
    killHard(p.pid);
    return { killed: p.name, pid: p.pid };
  });
  // A data center's loss: every process of it with SIGKILL, and the PostgreSQL servers its Patroni nodes started.
  app.post('/api/data-centers/:dc/kill', async (req, reply) => {
    const state = load();
    const dc = (req.params as { dc: string }).dc;
    if (!state.topology.dataCenters.some((d) => d.name === dc))
      return reply.code(404).send({ error: 'no such data center' });
    return killDataCenter(state, dc);
  });
  app.post('/api/processes/:name/restart', async (req, reply) => {
    const state = load();
    const name = (req.params as { name: string }).name;
    const p = state.processes.find((x) => x.name === name);
    if (!p) return reply.code(404).send({ error: 'no such process' });
    if (isAlive(p.pid)) return reply.code(409).send({ error: `${name} is running` });
    // With a supervisor, it starts the process (it watches it, and sees how it ends), now, not after its back-off.
    if (p.kind !== 'supervisor' && supervisorOf(state)) {
      const answer = await callSupervisor<{ pid?: number; error?: string }>(
        state,
        'POST',
        `/processes/${name}/restart`,
      );
      return reply
        .code(answer.status)
        .send(answer.status === 200 ? { restarted: name, pid: answer.body.pid } : answer.body);
    }
    const started = await restart(state, name);
    return { restarted: name, pid: started.pid };
  });
  return { app, token };
}
