import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { currentMaster, redisCall } from '../../src/cluster/components/redis/server.ts';
import { isAlive, killHard, waitUntil } from '../../src/cluster/process.ts';
import { restart, stateOf } from '../../src/cluster/run/index.ts';
import { status } from '../../src/cluster/run/status.ts';
import { allProcesses, type ProcessSpec, webMetrics } from '../../src/cluster/topology/index.ts';
import { Client, pngImage } from '../support/app.ts';
import { perSecond, quantile, startTopology, steadyLoad } from '../support/cluster.ts';

type Topo = Awaited<ReturnType<typeof startTopology>>;
type RedisSpec = Extract<ProcessSpec, { kind: 'redis' }>;
type Sentinel = Extract<ProcessSpec, { kind: 'redisSentinel' }>;

describe('cache preset: lb plus a durable and a cache Redis, each master + replica, under 3 Sentinels', () => {
  let topo: Topo;
  let viewer: Client;
  let photoId: string;
  let owner: string;
  const redises = () => allProcesses(topo.state.topology).filter((p): p is RedisSpec => p.kind === 'redis');
  const sentinels = () => allProcesses(topo.state.topology).filter((p): p is Sentinel => p.kind === 'redisSentinel');
  const pidOf = (name: string) => topo.state.processes.find((p) => p.name === name)?.pid as number;
  const masterOf = async (tier: 'durable' | 'cache') => {
    const addr = await currentMaster(sentinels(), tier, topo.state.secrets.sentinel);
    return redises().find((r) => r.tier === tier && r.listen.host === addr?.host);
  };
  const reads = (i: number) => {
    const paths = [
      `/api/v1/photos/${photoId}`,
      `/api/v1/users/${owner}`,
      `/api/v1/users/${owner}/photos`,
      '/api/v1/feed',
    ];
    const path = paths[i % paths.length] as string;
    return { url: topo.url + path, init: { headers: { authorization: `Bearer ${viewer.token}` } } };
  };
  /** Kills a tier's master; resolves with the ms until the Sentinels name another one. */
  const killMaster = async (tier: 'durable' | 'cache') => {
    const victim = (await masterOf(tier)) as RedisSpec;
    const started = Date.now();
    killHard(pidOf(victim.name));
    await waitUntil(async () => {
      const now = await currentMaster(sentinels(), tier, topo.state.secrets.sentinel);
      return now !== null && now.host !== victim.listen.host;
    }, 30_000);
    return { victim, ms: Date.now() - started };
  };

  beforeAll(async () => {
    // Faults here are restarted by hand (restart()): no supervisor racing them; test/cluster/stateless.test.ts has it.
    topo = await startTopology('cache', { supervise: false });
    viewer = new Client(topo.url);
    owner = await viewer.signUp();
    await viewer.logIn(owner);
    photoId = (await viewer.upload(await pngImage(), 'cached')).body.photo.id;
    expect((await viewer.waitForPhoto(photoId, 15_000)).body.photo.status).toBe('ready');
  }, 240_000);
  afterAll(async () => {
    if (topo) expect(await topo.stop()).toEqual([]);
  }, 60_000);
  beforeEach(async () => {
    Object.assign(topo.state, stateOf(topo.runRoot, topo.state.topology.name));
    // Whatever a test killed comes back: the server the Sentinels name as master first, then the others as its replicas.
    for (const tier of ['durable', 'cache'] as const) {
      const named = await currentMaster(sentinels(), tier, topo.state.secrets.sentinel);
      const ofTier = redises().filter((r) => r.tier === tier);
      ofTier.sort((a, b) => Number(b.listen.host === named?.host) - Number(a.listen.host === named?.host));
      for (const r of ofTier) {
        if (!topo.state.processes.some((p) => p.name === r.name && isAlive(p.pid))) await restart(topo.state, r.name);
      }
    }
    await waitUntil(async () => (await status(topo.state)).every((r) => r.health === 'healthy'), 60_000);
  }, 120_000);

  it('is up: status names each Redis master and replica, and the 3 Sentinels; sessions live in the durable Redis', async () => {
    const rows = await status(topo.state);
    const redisRows = rows.filter((r) => r.kind === 'redis');
    expect(redisRows.map((r) => `${r.tier} ${r.role}`).sort()).toEqual([
      'cache master',
      'cache replica',
      'durable master',
      'durable replica',
    ]);
    expect(rows.filter((r) => r.kind === 'redisSentinel').map((r) => r.role)).toEqual([
      'sentinel',
      'sentinel',
      'sentinel',
    ]);
    const durable = (await masterOf('durable')) as RedisSpec;
    const keys = (await redisCall(
      { ...durable.listen, password: topo.state.secrets.redis },
      'KEYS',
      'session:*',
    )) as string[];
    expect(keys.length).toBeGreaterThan(0);
    // The durable tier never evicts and keeps an append-only file; the cache tier evicts.
    const policy = (r: RedisSpec) =>
      redisCall({ ...r.listen, password: topo.state.secrets.redis }, 'CONFIG', 'GET', 'maxmemory-policy');
    expect(((await policy(durable)) as string[])[1]).toBe('noeviction');
    expect(((await policy((await masterOf('cache')) as RedisSpec)) as string[])[1]).toBe('allkeys-lru');
  });

  it('a write through one web server is never read stale through the other: 200 times, 0 stale', async () => {
    const webs = allProcesses(topo.state.topology).filter((p) => p.kind === 'web');
    const [one, other] = webs.map((w) => (w.kind === 'web' ? `http://${w.listen.host}:${w.listen.port}` : ''));
    const auth = { authorization: `Bearer ${viewer.token}` };
    const read = async () => (await (await fetch(`${other}/api/v1/photos/${photoId}`, { headers: auth })).json()).photo;
    expect((await fetch(`${one}/api/v1/photos/${photoId}/like`, { method: 'DELETE', headers: auth })).status).toBe(204);
    const base = (await read()).likeCount as number; // now in the other server's L1 and in the cache Redis
    const stale: unknown[] = [];
    for (let i = 0; i < 200; i++) {
      const liked = i % 2 === 0;
      const write = await fetch(`${one}/api/v1/photos/${photoId}/like`, {
        method: liked ? 'PUT' : 'DELETE',
        headers: auth,
      });
      expect(write.status).toBe(204);
      const photo = await read();
      if (photo.likeCount !== base + (liked ? 1 : 0) || photo.likedByMe !== liked) {
        stale.push({ i, likeCount: photo.likeCount, likedByMe: photo.likedByMe });
      }
    }
    expect(stale).toEqual([]);
  }, 60_000);

  it('feeds are precomputed in the cache Redis: a write through one web server shows at once in the feed through the other', async () => {
    const webs = allProcesses(topo.state.topology).filter((p) => p.kind === 'web');
    const [one, other] = webs.map((w) => (w.kind === 'web' ? `http://${w.listen.host}:${w.listen.port}` : '')) as [
      string,
      string,
    ];
    const feedIds = async (c: Client, base: string) => {
      const res = await fetch(`${base}/api/v1/feed`, { headers: { authorization: `Bearer ${c.token}` } });
      expect(res.status).toBe(200);
      return ((await res.json()) as { items: { id: string }[] }).items.map((p) => p.id);
    };
    const author = new Client(one);
    const authorName = await author.signUp();
    await author.logIn(authorName);
    const fan = new Client(other);
    await fan.logIn(await fan.signUp());
    expect((await fan.request('PUT', `/api/v1/users/${authorName}/follow`, { bearer: true })).status).toBe(204);
    expect(await feedIds(fan, other)).toEqual([]);
    const shown: string[] = [];
    for (let i = 0; i < 10; i++) {
      // The owner's own upload through one server is in their feed through the other at once (processing).
      const id = (await author.upload(await pngImage(8 + i, 8))).body.photo.id as string;
      expect((await feedIds(author, other))[0]).toBe(id);
      await author.waitForPhoto(id, 15_000);
      shown.unshift(id);
      expect(await feedIds(fan, other)).toEqual(shown);
    }
    const gone = shown.shift() as string;
    expect((await author.request('DELETE', `/api/v1/photos/${gone}`, { bearer: true })).status).toBe(204);
    expect(await feedIds(fan, other)).toEqual(shown);
    expect(await feedIds(author, other)).toEqual(shown);

    // FLUSHALL under load: every feed is rebuilt from PostgreSQL by its next read, and no request fails.
    const load = steadyLoad(reads, { ratePerSecond: 30, ms: 5000 });
    await new Promise((r) => setTimeout(r, 1500));
    const master = (await masterOf('cache')) as RedisSpec;
    expect(await redisCall({ ...master.listen, password: topo.state.secrets.redis }, 'FLUSHALL')).toBe('OK');
    expect(await feedIds(fan, other)).toEqual(shown);
    expect(await feedIds(fan, one)).toEqual(shown);
    expect((await load).failures).toEqual([]);
    // Rebuilt into the cache Redis, not only answered.
    const feeds = (await redisCall(
      { ...master.listen, password: topo.state.secrets.redis },
      'KEYS',
      'tl:home:*',
    )) as string[];
    expect(feeds.length).toBeGreaterThanOrEqual(2);

    expect((await fan.request('DELETE', `/api/v1/users/${authorName}/follow`, { bearer: true })).status).toBe(204);
    expect(await feedIds(fan, one)).toEqual([]);
  }, 120_000);

  it('a log-out through one web server ends the session on the other at once, though each caches sessions', async () => {
    const webs = allProcesses(topo.state.topology).filter((p) => p.kind === 'web');
    const [one, other] = webs.map((w) => (w.kind === 'web' ? `http://${w.listen.host}:${w.listen.port}` : ''));
    for (let i = 0; i < 20; i++) {
      const c = new Client(topo.url);
      await c.logIn(owner);
      const auth = { authorization: `Bearer ${c.token}` };
      expect((await fetch(`${other}/api/v1/feed`, { headers: auth })).status).toBe(200); // now in its session cache
      expect((await fetch(`${one}/api/v1/sessions/current`, { method: 'DELETE', headers: auth })).status).toBe(204);
      expect((await fetch(`${other}/api/v1/feed`, { headers: auth })).status).toBe(401);
    }
  }, 60_000);

  it('kill -9 of the cache Redis master under load: Sentinel promotes the replica, no request fails', async () => {
    const load = steadyLoad(reads, { ratePerSecond: 40, ms: 10_000 });
    await new Promise((r) => setTimeout(r, 3000));
    const changes = async () => {
      let total = 0;
      for (const w of allProcesses(topo.state.topology)) {
        if (w.kind !== 'web') continue;
        const { host, port } = webMetrics(w);
        const body = await (await fetch(`http://${host}:${port}/metrics`)).text();
        total += Number(/scaleout_redis_master_changes_total\{tier="cache"\} (\d+)/.exec(body)?.[1] ?? 0);
      }
      return total;
    };
    const before = await changes();
    const { victim, ms } = await killMaster('cache');
    const report = await load;
    console.log(`cache master ${victim.name} killed: a new master in ${ms} ms; ${report.ok}/${report.sent} ok`);
    expect(report.failures).toEqual([]);
    // Each web server saw the failover and counted it.
    await waitUntil(async () => (await changes()) >= before + 2, 15_000, 'both web servers count the failover');
  }, 60_000);

  it('kill -9 of the durable Redis master under load: nobody is logged out, requests wait (or are shed with Retry-After) rather than fail', async () => {
    const load = steadyLoad(
      (i) =>
        i % 5 === 0
          ? {
              url: `${topo.url}/api/v1/photos/${photoId}/like`,
              init: { method: i % 10 === 0 ? 'PUT' : 'DELETE', headers: { authorization: `Bearer ${viewer.token}` } },
            }
          : reads(i),
      { ratePerSecond: 30, ms: 10_000 },
    );
    await new Promise((r) => setTimeout(r, 3000));
    const { victim, ms } = await killMaster('durable');
    const report = await load;
    // Requests wait for the new master; those the balancer sheds meanwhile (its slots held by the waiting
    // ones) get 503 OVERLOADED with Retry-After, and succeed when sent again after it.
    console.log(
      `durable master ${victim.name} killed: a new master in ${ms} ms; ${report.ok}/${report.sent} ok, ${report.shed} shed and sent again`,
    );
    console.log(
      `durable failover: sheds per second since the load began ${JSON.stringify(perSecond(report.shedTimes))}, successes ${JSON.stringify(perSecond(report.okTimes))}`,
    );
    expect(report.failures).toEqual([]);
    // The session written before the failover is still there.
    expect((await viewer.request('GET', '/api/v1/feed', { bearer: true })).status).toBe(200);
  }, 60_000);

  it('the whole cache tier down: the site answers from PostgreSQL, and the fast path returns with Redis', async () => {
    const before = await steadyLoad(reads, { ratePerSecond: 30, ms: 3000 });
    for (const r of redises().filter((x) => x.tier === 'cache')) killHard(pidOf(r.name));
    const report = await steadyLoad(reads, { ratePerSecond: 30, ms: 6000 });
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(report.sent);
    // The dead cache costs a request little: calls fail at once (no offline queue), or after 100 ms, then the breaker skips it.
    const [p99Before, p99Down] = [quantile(before.latencies, 0.99), quantile(report.latencies, 0.99)];
    console.log(
      `cache tier down: p99 ${p99Down} ms (max ${Math.max(...report.latencies)} ms) vs ${p99Before} ms (max ${Math.max(...before.latencies)} ms) before`,
    );
    expect(p99Down).toBeLessThanOrEqual(p99Before + 100);

    // Back up (the last master first): once the circuit breaker's 5 s are over, reads fill the cache Redis again.
    const named = await currentMaster(sentinels(), 'cache', topo.state.secrets.sentinel);
    const cacheServers = redises().filter((r) => r.tier === 'cache');
    cacheServers.sort((a, b) => Number(b.listen.host === named?.host) - Number(a.listen.host === named?.host));
    for (const r of cacheServers) await restart(topo.state, r.name);
    await new Promise((r) => setTimeout(r, 6000));
    const master = (await masterOf('cache')) as RedisSpec;
    await redisCall({ ...master.listen, password: topo.state.secrets.redis }, 'FLUSHALL');
    // A photo no server has seen: its first settled read is a miss in L1 and L2, and fills both.
    const fresh = (await viewer.upload(await pngImage(20, 20), 'after the outage')).body.photo.id as string;
    expect((await viewer.waitForPhoto(fresh, 15_000)).body.photo.status).toBe('ready');
    await waitUntil(
      async () => Number(await redisCall({ ...master.listen, password: topo.state.secrets.redis }, 'DBSIZE')) > 0,
      10_000,
      'reads fill the cache Redis again',
    );
  }, 90_000);
});
