import Fastify, { type FastifyInstance } from 'fastify';
import type client from 'prom-client';
import { z } from 'zod';
import { isAlive } from '../process.ts';
import { addShardCluster } from '../reshard/add-cluster.ts';
import { shardBalancerPolicy } from '../reshard/hot-shard.ts';
import { guardControlApi } from '../run/guard.ts';
import { readControlToken } from '../run/private.ts';
import { loadState, updateState } from '../run/state.ts';
import { autoscalePolicy, maxWebServers, maxWorkers } from '../topology/schema.ts';
import { webServers, workers } from '../topology/select.ts';
import { checkCheckout } from './checkout.ts';
import { supervisorOf } from './client.ts';
import type { Controller } from './controllers.ts';
import type { Restarts } from './restarts.ts';
import type { ShardBalancer } from './shard-balancer.ts';
import { deployWebTier, scaleWebTier, type WebTierOptions } from './web-tier.ts';
import { deployWorkerTier, scaleWorkerTier } from './worker-tier.ts';

export interface ApiDeps {
  runDir: string;
  registry: client.Registry;
  restarts: Restarts;
  autoscaler: Controller;
  /** The worker tier's, where the topology has workers. */
  workerAutoscaler?: Controller;
  /** One change of the web tier at a time. */
  exclusive<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /** One change of the worker tier at a time. */
  exclusiveWorkers<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /** Where the topology is sharded. */
  shardBalancer?: ShardBalancer;
  /** One change of the data tier at a time. */
  exclusiveData<T>(name: string, fn: () => Promise<T>): Promise<T>;
  operation(): string | null;
  tierLog: WebTierOptions['log'];
  log(fields: Record<string, unknown>, msg: string): void;
}

/**
 * The supervisor's private control API: status, scale, autoscale, deploy and
 * restart, each carried out here (the supervisor is the state's only writer
 * while it runs), and /metrics.
 */
export function buildControlApi(d: ApiDeps): FastifyInstance {
  const load = () => loadState(d.runDir);
  const app = Fastify({ logger: false });
  const self = supervisorOf(load());
  if (!self) throw new Error('the topology has no supervisor');
  // Every route, /healthz and /metrics too: the run's token, its own Host, no other site.
  guardControlApi(app, { token: readControlToken(d.runDir), listen: self.listen });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/metrics', async (_req, reply) => reply.type(d.registry.contentType).send(await d.registry.metrics()));
  app.get('/status', async () => {
    const state = load();
    return {
      webServers: webServers(state.topology).map((w) => w.name),
      autoscale: state.topology.options.autoscale ?? null,
      metric: d.autoscaler.metric(),
      lastDecision: d.autoscaler.decisions().at(-1) ?? null,
      ...(d.workerAutoscaler
        ? {
            workers: workers(state.topology).map((w) => w.name),
            workerAutoscale: state.topology.options.workerAutoscale ?? null,
            workerMetric: d.workerAutoscaler.metric(),
            lastWorkerDecision: d.workerAutoscaler.decisions().at(-1) ?? null,
          }
        : {}),
      operation: d.operation(),
      pendingRestarts: d.restarts.pending(),
    };
  });
  app.get('/decisions', async (req) =>
    (req.query as { tier?: string }).tier === 'worker'
      ? (d.workerAutoscaler?.decisions() ?? [])
      : d.autoscaler.decisions(),
  );
  const failure = (err: unknown) => ({ error: (err as Error).message });
  app.post('/scale', async (req, reply) => {
    const body = z
      .object({
        web: z.number().int().min(1).max(maxWebServers).optional(),
        worker: z.number().int().min(0).max(maxWorkers).optional(),
      })
      .strict()
      .refine((b) => b.web !== undefined || b.worker !== undefined)
      .safeParse(req.body);
    // Refused before anything changes: a bad count leaves the autoscalers as they were.
    if (!body.success) {
      return reply.code(400).send({
        error: `expected {"web": <count>, "worker": <count>}: web servers from 1 to ${maxWebServers}, workers from 0 to ${maxWorkers}; nothing changed`,
      });
    }
    const { web, worker } = body.data;
    if (worker !== undefined && !d.workerAutoscaler) {
      return reply
        .code(400)
        .send({ error: 'this topology has no worker tier (preset queue has one); nothing changed' });
    }
    // A count set by hand is the operator's: that tier's autoscaler stops until `autoscale --on`.
    const t = load().topology;
    const pause = {
      web: web !== undefined && Boolean(t.options.autoscale?.enabled),
      worker: worker !== undefined && Boolean(t.options.workerAutoscale?.enabled),
    };
    if (pause.web || pause.worker) {
      updateState(d.runDir, (s) => {
        if (pause.web && s.topology.options.autoscale) s.topology.options.autoscale.enabled = false;
        if (pause.worker && s.topology.options.workerAutoscale) s.topology.options.workerAutoscale.enabled = false;
      });
      d.log({ web, worker }, 'autoscaler paused: the count was set by hand');
    }
    try {
      const [webs, workerList] = await Promise.all([
        web === undefined
          ? undefined
          : d.exclusive(`scale to ${web}`, () => scaleWebTier(d.runDir, web, { log: d.tierLog })),
        worker === undefined
          ? undefined
          : d.exclusiveWorkers(`scale workers to ${worker}`, () =>
              scaleWorkerTier(d.runDir, worker, { log: d.tierLog }),
            ),
      ]);
      return {
        ...(webs ? { webServers: webs.map((w) => w.name) } : {}),
        ...(workerList ? { workers: workerList.map((w) => w.name) } : {}),
        autoscalerPaused: pause.web || pause.worker,
      };
    } catch (err) {
      return reply.code(409).send(failure(err));
    }
  });
  app.post('/autoscale', async (req, reply) => {
    const { tier = 'web', ...change } = (req.body ?? {}) as { tier?: unknown } & Record<string, unknown>;
    if (tier !== 'web' && tier !== 'worker') return reply.code(400).send({ error: 'tier: web or worker' });
    const controller = tier === 'web' ? d.autoscaler : d.workerAutoscaler;
    if (!controller) return reply.code(400).send({ error: 'this topology has no worker tier' });
    const state = load();
    const key = tier === 'web' ? 'autoscale' : 'workerAutoscale';
    const count = (tier === 'web' ? webServers : workers)(state.topology).length;
    const merged = autoscalePolicy.safeParse({
      ...(state.topology.options[key] ?? { min: Math.max(1, count), max: Math.max(count, 6), target: 2 }),
      ...change,
    });
    if (!merged.success) return reply.code(400).send({ error: z.prettifyError(merged.error) });
    if (merged.data.min > merged.data.max) return reply.code(400).send({ error: 'min is above max' });
    updateState(d.runDir, (s) => {
      s.topology.options[key] = merged.data;
    });
    controller.reset();
    d.log({ tier, policy: merged.data }, 'autoscaler policy changed');
    return { tier, [key]: merged.data };
  });
  app.post('/deploy', async (req, reply) => {
    const body = z
      .object({ checkout: z.string().min(1), readySeconds: z.number().positive().max(600).default(60) })
      .strict()
      .safeParse(req.body);
    if (!body.success) {
      return reply.code(400).send({
        error: `expected {"checkout": <dir>, "readySeconds": <1 to 600>}: ${z.prettifyError(body.error)}`,
      });
    }
    // It runs as root with the site's secrets: only a checkout of this project that the operator owns.
    let checkout: string;
    try {
      checkout = checkCheckout(body.data.checkout);
    } catch (err) {
      d.log({ checkout: body.data.checkout, err }, 'deploy refused');
      return reply.code(400).send(failure(err));
    }
    try {
      const readyMs = body.data.readySeconds * 1000;
      // Each data center in turn, its web tier then its workers (the jobs of the new web servers may need the
      // new code): a data center whose new version is not ready stops the deploy, and the next is not touched.
      const replaced: { old: string; new: string }[] = [];
      let version = '';
      const dataCenters = load().topology.dataCenters.map((dc) => dc.name);
      for (const dataCenter of dataCenters) {
        const o = { log: d.tierLog, readyMs, dataCenter };
        const web = await d
          .exclusive(`deploy ${dataCenter}`, () => deployWebTier(d.runDir, checkout, o))
          .catch((err: Error) => {
            if (dataCenters.length < 2) throw err;
            const done = dataCenters.slice(0, dataCenters.indexOf(dataCenter));
            throw new Error(
              `${dataCenter}: ${err.message} (${done.length ? `done: ${done.join(', ')}` : 'no data center changed'})`,
            );
          });
        version = web.version;
        replaced.push(...web.replaced);
        replaced.push(
          ...(await d.exclusiveWorkers(`deploy ${dataCenter}'s workers`, () =>
            deployWorkerTier(d.runDir, checkout, o),
          )),
        );
      }
      return { version, replaced, dataCenters };
    } catch (err) {
      d.log({ err }, 'deploy failed');
      return reply.code(409).send(failure(err));
    }
  });
  app.get('/shard-balancer', async (_req, reply) => {
    if (!d.shardBalancer) return reply.code(400).send({ error: 'this topology is not sharded' });
    return { shardBalancer: load().topology.options.shardBalancer ?? null, decisions: d.shardBalancer.decisions() };
  });
  app.post('/shard-balancer', async (req, reply) => {
    if (!d.shardBalancer) return reply.code(400).send({ error: 'this topology is not sharded; nothing changed' });
    const change = (req.body ?? {}) as Record<string, unknown>;
    const merged = shardBalancerPolicy
      .strict()
      .safeParse({ ...(load().topology.options.shardBalancer ?? { enabled: false }), ...change });
    if (!merged.success) return reply.code(400).send({ error: `${z.prettifyError(merged.error)}; nothing changed` });
    updateState(d.runDir, (s) => {
      s.topology.options.shardBalancer = merged.data;
    });
    d.log({ shardBalancer: merged.data }, 'shard balancer policy changed');
    return { shardBalancer: merged.data };
  });
  // A shard cluster joins a sharded topology; it holds no logical shard until a move puts some there.
  app.post('/shard-clusters', async (req, reply) => {
    const body = z
      .object({ replicas: z.number().int().min(0).max(2).default(1) })
      .strict()
      .safeParse(req.body ?? {});
    if (!body.success) {
      return reply.code(400).send({ error: `expected {"replicas": <0 to 2>}: ${z.prettifyError(body.error)}` });
    }
    try {
      const lines: string[] = [];
      const report = await d.exclusiveData('add a shard cluster', () =>
        addShardCluster(d.runDir, {
          replicas: body.data.replicas,
          log: (line) => {
            lines.push(line);
            d.log({}, line.trim());
          },
        }),
      );
      return { ...report, log: lines };
    } catch (err) {
      d.log({ err }, 'adding a shard cluster failed');
      return reply.code(409).send(failure(err));
    }
  });
  app.post('/processes/:name/restart', async (req, reply) => {
    const name = (req.params as { name: string }).name;
    const p = load().processes.find((x) => x.name === name);
    if (!p) return reply.code(404).send({ error: 'no such process' });
    if (isAlive(p.pid)) return reply.code(409).send({ error: `${name} is running` });
    if (d.restarts.isRestarting(name)) return reply.code(409).send({ error: `${name} is starting` });
    try {
      await d.restarts.restartNow(name);
    } catch (err) {
      return reply.code(500).send(failure(err));
    }
    const after = load().processes.find((x) => x.name === name);
    return { restarted: name, pid: after?.pid };
  });
  return app;
}
