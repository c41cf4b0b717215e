import http from 'node:http';

/**
 * The data centers' health as the DNS sees it, with hysteresis: PowerDNS 4.7
 * marks an address down after one failed check and up after one success,
 * and exports nothing of its checks. This probes each data center's edge
 * every `intervalMs`, keeps the last `window` results, and turns a data
 * center down once `downAfter` of them failed, up again once `upAfter` of
 * them succeeded. PowerDNS asks it (`ifurlextup`): `/up/<dataCenter>`
 * answers 200 while it is served, 503 while not. `/metrics` is for Prometheus.
 *
 * Never every data center down at once: when none is up, the one whose edge
 * answered most recently is served (see `servedDataCenters`). PowerDNS,
 * given no group up, answers the client's own group, which may be the one
 * that died: while the survivor waits for its promotion its readiness may
 * fail too, and its clients and the dead one's would be sent to the dead one.
 */
export interface HealthTarget {
  dataCenter: string;
  /** Its edge's readiness URL. */
  url: string;
  /** The Host its edge answers to. */
  hostHeader?: string;
}

export interface Hysteresis {
  intervalMs: number;
  window: number;
  downAfter: number;
  upAfter: number;
  timeoutMs: number;
}

export const defaultHysteresis: Hysteresis = { intervalMs: 500, window: 5, downAfter: 3, upAfter: 3, timeoutMs: 1000 };

interface TargetState {
  up: boolean;
  results: boolean[];
  probes: { ok: number; failed: number };
  transitions: { up: number; down: number };
  changedAt: number;
  /** When its edge last answered a probe with 200 (ms since the epoch; 0 never). */
  lastOkAt: number;
}

/**
 * The data centers the DNS serves: every one that is up; when none is, the
 * one whose edge answered last (a fault that applies to all of them, or the
 * survivor of a loss waiting for its primary, is no reason to answer with
 * nothing, or with a dead one). None only when no edge ever answered.
 */
export function servedDataCenters(states: Map<string, Pick<TargetState, 'up' | 'lastOkAt'>>): Set<string> {
  const up = [...states].filter(([, s]) => s.up).map(([dc]) => dc);
  if (up.length > 0) return new Set(up);
  const [latest] = [...states].filter(([, s]) => s.lastOkAt > 0).sort((a, b) => b[1].lastOkAt - a[1].lastOkAt);
  return new Set(latest ? [latest[0]] : []);
}

/** Probes `url` once: true on HTTP 200 within the timeout. */
function probe(t: HealthTarget, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(t.url, { timeout: timeoutMs, headers: t.hostHeader ? { host: t.hostHeader } : {} }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
  });
}

/** The next state of one data center after a probe: the window moves, and the state turns only past its bound. */
export function nextHealth(s: Pick<TargetState, 'up' | 'results'>, ok: boolean, h: Hysteresis): boolean {
  s.results.push(ok);
  if (s.results.length > h.window) s.results.shift();
  const failed = s.results.filter((r) => !r).length;
  const succeeded = s.results.length - failed;
  if (s.up && failed >= h.downAfter) return false;
  if (!s.up && succeeded >= h.upAfter && s.results.slice(-h.upAfter).every(Boolean)) return true;
  return s.up;
}

export function startHealthAggregator(o: {
  listen: { host: string; port: number };
  targets: HealthTarget[];
  hysteresis?: Partial<Hysteresis>;
  log?: (msg: string) => void;
}): Promise<{ states(): Record<string, TargetState>; close(): Promise<void> }> {
  const h = { ...defaultHysteresis, ...o.hysteresis };
  // Up until shown otherwise: a data center that starts is served at once.
  const states = new Map<string, TargetState>(
    o.targets.map((t) => [
      t.dataCenter,
      {
        up: true,
        results: [],
        probes: { ok: 0, failed: 0 },
        transitions: { up: 0, down: 0 },
        changedAt: Date.now(),
        lastOkAt: 0,
      },
    ]),
  );
  let stopped = false;
  const loops = o.targets.map(async (t) => {
    const s = states.get(t.dataCenter) as TargetState;
    while (!stopped) {
      const started = Date.now();
      const ok = await probe(t, h.timeoutMs);
      if (ok) {
        s.probes.ok++;
        s.lastOkAt = Date.now();
      } else s.probes.failed++;
      const up = nextHealth(s, ok, h);
      if (up !== s.up) {
        s.up = up;
        s.changedAt = Date.now();
        s.transitions[up ? 'up' : 'down']++;
        o.log?.(
          `${t.dataCenter} ${up ? 'up' : 'down'} (last ${s.results.length} probes: ${s.results.map((r) => (r ? '+' : '-')).join('')})`,
        );
      }
      await new Promise((r) => setTimeout(r, Math.max(0, h.intervalMs - (Date.now() - started))));
    }
  });
  const served = () => servedDataCenters(states);
  const metrics = () => {
    const lines = [
      '# HELP scaleout_dns_health_up Whether the DNS serves the data center (1) or has dropped it (0)',
      '# TYPE scaleout_dns_health_up gauge',
      ...[...states].map(([dc, s]) => `scaleout_dns_health_up{dataCenter="${dc}"} ${s.up ? 1 : 0}`),
      '# HELP scaleout_dns_health_served Whether the DNS answers with the data center (1): up, or, none being up, the one whose edge answered last',
      '# TYPE scaleout_dns_health_served gauge',
      ...[...states].map(([dc]) => `scaleout_dns_health_served{dataCenter="${dc}"} ${served().has(dc) ? 1 : 0}`),
      '# HELP scaleout_dns_health_probes_total Probes of each data center’s edge, by result',
      '# TYPE scaleout_dns_health_probes_total counter',
      ...[...states].flatMap(([dc, s]) => [
        `scaleout_dns_health_probes_total{dataCenter="${dc}",result="ok"} ${s.probes.ok}`,
        `scaleout_dns_health_probes_total{dataCenter="${dc}",result="failed"} ${s.probes.failed}`,
      ]),
      '# HELP scaleout_dns_health_transitions_total Times a data center was turned up or down',
      '# TYPE scaleout_dns_health_transitions_total counter',
      ...[...states].flatMap(([dc, s]) => [
        `scaleout_dns_health_transitions_total{dataCenter="${dc}",to="up"} ${s.transitions.up}`,
        `scaleout_dns_health_transitions_total{dataCenter="${dc}",to="down"} ${s.transitions.down}`,
      ]),
    ];
    return `${lines.join('\n')}\n`;
  };
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const m = /^\/up\/([a-z0-9-]+)$/.exec(url);
    if (m) {
      const s = states.get(m[1] as string);
      if (!s) return void res.writeHead(404).end('no such data center');
      const on = served().has(m[1] as string);
      return void res
        .writeHead(on ? 200 : 503, { 'content-type': 'text/plain' })
        .end(s.up ? 'up' : on ? 'down, served: no data center is up and its edge answered last' : 'down');
    }
    if (url === '/metrics')
      return void res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics());
    if (url === '/status') {
      return void res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(
          JSON.stringify(
            Object.fromEntries(
              [...states].map(([dc, s]) => [dc, { ...s, results: undefined, served: served().has(dc) }]),
            ),
          ),
        );
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.listen.port, o.listen.host, () => {
      resolve({
        states: () => Object.fromEntries(states),
        close: async () => {
          stopped = true;
          await Promise.all(loops);
          server.closeAllConnections();
          await new Promise<void>((r) => server.close(() => r()));
        },
      });
    });
  });
}
