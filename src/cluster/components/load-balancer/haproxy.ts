import { writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import path from 'node:path';
import { costlyPostPaths } from '../../../server/admission.ts';
import { requireBinaries, type StartedProcess, startProcess, tcpOpen, waitUntil } from '../../process.ts';
import type { SpecOf } from '../../topology/schema.ts';
import { webIndex } from '../../topology/select.ts';
import { isStandbyCluster } from '../patroni/cluster.ts';

type LoadBalancer = SpecOf<'loadBalancer'>;
type DbProxy = SpecOf<'dbProxy'>;
type Web = SpecOf<'web'>;
type Patroni = SpecOf<'patroni'>;

/** How much later than a read a write waiting in the queue is served (ms), and a costly one. */
const writeOffsetMs = 25;
const costlyOffsetMs = 50;

/** The balancer's 503 when it sheds: JSON, with Retry-After, never cached. */
const overloadedAnswer = `content-type "application/json; charset=utf-8" string '{"error":{"code":"OVERLOADED","message":"the site is busy: try again in a second"}}' hdr retry-after 1 hdr cache-control no-store`;

/** The queue depths per usable server at which each class is shed at the door: reads at `perServer`. */
export function doorDepths(perServer: number): { read: number; write: number; costly: number } {
  return {
    read: perServer,
    write: Math.max(1, Math.round(perServer / 3)),
    costly: Math.max(1, Math.round(perServer / 6)),
  };
}

/**
 * Shedding at the door: a request that finds the queue as deep as its class's bound (per usable server:
 * \`avg_queue\`, which rounds up) is answered 503 with Retry-After at once, before it waits. A queue drains
 * at the servers' rate, so its depth bounds what overload adds to a served request's time.
 *
 * Two sets of bounds, as CoDel tells a standing queue from a burst: once no arrival has found the queue
 * shallower than a third of the reads' bound for \`standingMs\`, the queue stands, and the bounds are a third
 * of the usual ones, so overload costs a served request little; until then the usual ones, so that a stall
 * of a few hundred milliseconds below capacity (a shared core, a commit waiting for its standby) is waited
 * out, not shed: a shed request costs its user the Retry-After, a second. Costly requests go first, reads
 * last. When an arrival last found the queue shallow is a tag in a one-entry stick table (\`queue_state\`).
 */
function doorShedding(perServer: number, standingMs: number): string {
  if (perServer <= 0) return '';
  const usual = doorDepths(perServer);
  const standing = doorDepths(Math.max(1, Math.round(perServer / 3)));
  const shed = `http-request return status 503 ${overloadedAnswer}`;
  // Milliseconds in 31 bits (a tag holds 32): wraps every 24 days, for an instant of "not standing".
  const nowMs = 'date(0,ms),and(2147483647)';
  return `    # The door. When did an arrival last find the queue shallower than ${standing.read} per server?
    http-request track-sc1 int(1) table queue_state
    http-request sc-set-gpt0(1) ${nowMs} if { avg_queue(web) lt ${standing.read} }
    http-request set-var(txn.shallow_at) sc1_get_gpt0
    http-request set-var(txn.since_shallow) ${nowMs},sub(txn.shallow_at)
    acl queue_standing var(txn.since_shallow) -m int gt ${standingMs}
    # Shed by the queue's depth per usable server: sign-ups, log-ins and uploads at ${usual.costly} (${standing.costly} while
    # the queue stands), other writes at ${usual.write} (${standing.write}), reads at ${usual.read} (${standing.read}).
    ${shed} if METH_POST costly queue_standing { avg_queue(web) ge ${standing.costly} }
    ${shed} if !METH_GET !METH_HEAD queue_standing { avg_queue(web) ge ${standing.write} }
    ${shed} if queue_standing { avg_queue(web) ge ${standing.read} }
    ${shed} if METH_POST costly { avg_queue(web) ge ${usual.costly} }
    ${shed} if !METH_GET !METH_HEAD { avg_queue(web) ge ${usual.write} }
    ${shed} if { avg_queue(web) ge ${usual.read} }
`;
}

/** What the queue's timeout is for: the bound on a wait, or with the door, the backstop behind it. */
const queueTimeoutComment = (doorPerServer: number) =>
  `    # Admission control${doorPerServer > 0 ? ', its backstop' : ''}: a request that waits longer than this for a web server's free slot
    # (maxconn) is answered 503 at once, with Retry-After: never a wait of seconds behind the load.
${
  doorPerServer > 0
    ? `    # What bounds the wait under overload is the queue's depth (the frontend's door, below); this bound is
    # for servers that stall, and is long enough that a stall below capacity is waited out, not shed.
`
    : ''
}`;

/** The one-entry table the door counts in (see doorShedding). */
const queueStateTable = (perServer: number) =>
  perServer <= 0
    ? ''
    : `
backend queue_state
    stick-table type integer size 1 expire 10s store gpt0
`;

/**
 * The public load balancer. Active health checks on /readyz every 500 ms take
 * a dead server out after two failures. Requests that failed to connect are
 * retried on another server (redispatch); idempotent requests are also retried
 * when a server dies mid-answer. HAProxy sets the request id that the web
 * servers log.
 *
 * The backend has a slot for every web server the topology may ever have
 * (web-1 … web-16, each at its own address: `slots`); the slots of servers not running
 * are `disabled` (maintenance). Scaling and deploys turn slots on and off
 * through the runtime API and rewrite this file, so a restarted balancer
 * starts with the same servers.
 */
export function loadBalancerConfig(
  lb: LoadBalancer,
  webs: Web[],
  slots: Web[],
  o: {
    runDir: string;
    maxConnectionsPerClient: number;
    /** Requests one web server serves at once; the rest wait in the balancer's queue. */
    maxRequestsPerServer: number;
    /** How long a request may wait in that queue before it gets a 503 with Retry-After. */
    queueTimeoutMs: number;
    /** The queue's depth per usable server at which a read is shed at the door (writes at ⅓, costly at ⅙; 0: off). */
    queueDepthPerServer?: number;
    /** How long no arrival may find the queue shallow before it counts as standing (ms; 500). */
    queueStandingMs?: number;
  },
): string {
  const running = new Set(webs.map(webIndex));
  const off = (w: Web) => (running.has(webIndex(w)) ? '' : ' disabled');
  const servers = slots.map((w) => `    server ${w.name} ${w.listen.host}:${w.listen.port} check${off(w)}`).join('\n');
  // The same servers again as backups without a health check: used only when every checked server is down.
  // A reason that applies to all of them at once (overload failing every /readyz) then makes the site slow,
  // not absent ("no server available"); a server that is really dead refuses the connection, which is retried.
  const backups = slots
    .map((w) => `    server ${backupName(w.name)} ${w.listen.host}:${w.listen.port} backup${off(w)}`)
    .join('\n');
  return `global
    maxconn 4096
    # The runtime API: a unix socket only root can open (0600), never a TCP port any local user can reach.
    stats socket ${runtimeApiSocket(o.runDir, lb)} mode 600 level admin
    stats timeout 30s
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    option forwardfor
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # Headers and, with http-buffer-request, the body too: a client sending a byte every few seconds is cut at 10 s.
    timeout http-request 10s
${queueTimeoutComment(o.queueDepthPerServer ?? 0)}    timeout queue ${o.queueTimeoutMs}ms
    retries 3
    option redispatch 1
    # Not 503: a web server's 503 is its own overload (or its database's absence); the same request again
    # on another server adds load where there is none to spare.
    retry-on conn-failure empty-response junk-response response-timeout 502 504
    # What the balancer answers when it sheds (its queue's timeout, or no server at all): JSON, with Retry-After.
    http-error status 503 ${overloadedAnswer}

frontend public
    bind ${lb.listen.host}:${lb.listen.port}${
      lb.fromEdge
        ? `
    # The CDN edge's connections: the PROXY protocol names the client it serves.
    bind ${lb.fromEdge.host}:${lb.fromEdge.port} accept-proxy`
        : ''
    }
    # Slow bodies wait here, not on a web server: a request reaches one only once its body is in
    # (or once it fills the buffer, 16 kB: an upload), so a slow sender holds no server and no in-flight slot.
    option http-buffer-request
    # At most ${o.maxConnectionsPerClient} connections at once from one client address.
    stick-table type ip size 100k expire 60s store conn_cur
    tcp-request connection track-sc0 src
    tcp-request connection reject if { sc0_conn_cur gt ${o.maxConnectionsPerClient} }
    unique-id-format %{+X}o%ci-%cp-%Ts-%rt-%pid
    # The edge names every request; the web servers log this id, and so does this log line.
    http-request set-header X-Request-Id %[unique-id]
    log-format "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %tsc %{+Q}r reqId=%ID"
    http-request set-header X-Forwarded-Proto http
    # Who the client is, the balancer alone says: whatever the client sent is dropped, then forwardfor adds its address.
    http-request del-header X-Forwarded-For
    http-request del-header X-Real-IP
    http-request del-header Forwarded
    # Nor which host it asked for, beyond its Host header: the web servers build nothing from a forwarded host.
    http-request del-header X-Forwarded-Host
    # Who waits in the queue goes first: reads, then writes as if they had come ${writeOffsetMs} ms later, the costly
    # writes (sign-up and log-in hash a password with scrypt, an upload carries a file) ${costlyOffsetMs} ms later.
    # An offset, not a class: a write admitted to the queue is served within its offset of the reads that
    # came with it, never starved by reads that keep coming (a class would hold it until the backstop, and a
    # write served after 0.4 s is overload's cost to its user). What overload sheds first is the door's.
    acl costly path ${costlyPostPaths.join(' ')}
    http-request set-priority-offset int(${writeOffsetMs}) if !METH_GET !METH_HEAD
    http-request set-priority-offset int(${costlyOffsetMs}) if METH_POST costly
${doorShedding(o.queueDepthPerServer ?? 0, o.queueStandingMs ?? 500)}    default_backend web

backend web
    balance roundrobin
    # Connections to the web servers come from the balancer's own address: the one address they trust for X-Forwarded-For.
    source ${lb.listen.host}
    # A POST that reached a server is never sent twice (only connection failures are retried for it),
    # unless it carries an Idempotency-Key: the site then answers a repeat with the first answer.
    http-request disable-l7-retry if METH_POST !{ req.hdr(idempotency-key) -m found }
    option httpchk GET /readyz
    http-check expect status 200
    # Without it a check times out after \`inter\` (500 ms): a server busy for half a second under load would
    # count as dead, and both at once would leave no server. A dead one refuses the connection at once anyway.
    timeout check 2s
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2 maxconn ${o.maxRequestsPerServer}
    # Every server gone (each slot disabled): say so, plainly. Overload is not this: its 503 says "busy".
    http-request return status 503 content-type "application/json; charset=utf-8" string '{"error":{"code":"NO_SERVER","message":"no server available"}}' hdr retry-after 1 if { nbsrv(web) eq 0 }
    option allbackups
${servers}
${backups}
${queueStateTable(o.queueDepthPerServer ?? 0)}
frontend stats
    bind ${lb.stats.host}:${lb.stats.port}
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /
    stats refresh 2s
`;
}

/**
 * The database proxy: port `primary` always reaches the Patroni leader and
 * port `replicas` the streaming replicas, each found by Patroni's REST checks.
 */
export function dbProxyConfig(proxy: DbProxy, nodes: Patroni[]): string {
  const servers = nodes
    .map(
      (n) =>
        `    server ${n.name} ${n.postgres.host}:${n.postgres.port} maxconn 200 check addr ${n.rest.host} port ${n.rest.port}`,
    )
    .join('\n');
  return `global
    maxconn 2000

defaults
    mode tcp
    retries 2
    timeout client 30m
    timeout server 30m
    timeout connect 2s
    timeout check 2s

listen stats
    mode http
    bind ${proxy.stats.host}:${proxy.stats.port}
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /

listen postgres_primary
    bind ${proxy.primary.host}:${proxy.primary.port}
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
${servers}

${
  proxy.remotePrimary
    ? `    # No primary here (a standby data center, or a demoted one): the other data center's, through the link.
    server remote-primary ${proxy.remotePrimary.via.host}:${proxy.remotePrimary.via.port} maxconn 200 check addr ${proxy.remotePrimary.check.host} port ${proxy.remotePrimary.check.port} backup
`
    : ''
}${
  proxy.localPrimary
    ? `
listen postgres_local_primary
    # The other data center's way in: this data center's primary only, never sent on (no loop between two proxies).
    bind ${proxy.localPrimary.host}:${proxy.localPrimary.port}
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
${servers}
`
    : ''
}${
  proxy.primaryCheck
    ? `
frontend primary_check
    # 200 while this data center has a primary, 503 when not: the other data center's backup check.
    mode http
    bind ${proxy.primaryCheck.host}:${proxy.primaryCheck.port}
    monitor-uri /primary
    monitor fail if { nbsrv(${proxy.localPrimary ? 'postgres_local_primary' : 'postgres_primary'}) lt 1 }
    http-request deny deny_status 404
`
    : ''
}
listen postgres_replicas
    bind ${proxy.replicas.host}:${proxy.replicas.port}
    balance roundrobin
    # A standby cluster (another data center's copy) has no primary: its standby leader serves reads too.
    option httpchk OPTIONS ${isStandbyCluster(nodes) ? '/read-only' : '/replica'}
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
${servers}
`;
}

/** HAProxy in master-worker mode, in the foreground of its own process (so its PID is ours to stop). */
export async function startHaproxy(
  name: string,
  config: string,
  runDir: string,
  probe: { host: string; port: number },
): Promise<StartedProcess> {
  requireBinaries(['/usr/sbin/haproxy'], 'haproxy');
  const file = path.join(runDir, `${name}.cfg`);
  writeFileSync(file, config, { mode: 0o600 });
  const proc = startProcess({
    command: '/usr/sbin/haproxy',
    args: ['-W', '-db', '-f', file],
    log: path.join(runDir, 'logs', `${name}.log`),
    cwd: runDir,
  });
  await waitUntil(() => tcpOpen(probe.host, probe.port), 15_000, `${name} listening on ${probe.host}:${probe.port}`);
  return proc;
}

/** The backup entry of a web server's slot (the same address, no health check). */
export const backupName = (server: string) => `${server}-backup`;

/** The balancer's admin socket (the runtime API), in the run directory. */
export function runtimeApiSocket(runDir: string, lb: LoadBalancer): string {
  const file = path.join(runDir, `${lb.name}.sock`);
  // sun_path holds 108 bytes.
  if (Buffer.byteLength(file) > 100) throw new Error(`the run directory's path is too long for a unix socket: ${file}`);
  return file;
}

/** Where a balancer's runtime API is: its run directory and its spec. */
export interface RuntimeApi {
  runDir: string;
  lb: LoadBalancer;
}

/** Sends one command to HAProxy's runtime API and returns its answer. */
export function runtimeApi(at: RuntimeApi, command: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path: runtimeApiSocket(at.runDir, at.lb) });
    let answer = '';
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`runtime API: no answer to "${command}"`)));
    socket.on('connect', () => socket.write(`${command}\n`));
    socket.on('data', (d) => {
      answer += d.toString('utf8');
    });
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

export interface BackendServer {
  name: string;
  /** HAProxy's status: UP, DOWN, MAINT, DRAIN, NOLB, "UP 1/2"… */
  status: string;
  /** Requests being served now. */
  current: number;
  /** Requests waiting in this server's queue. */
  queued: number;
  /** Requests it has been sent, in all. */
  total: number;
}

/** The web backend's servers as the balancer sees them (`show stat`). */
export async function backendServers(api: RuntimeApi): Promise<BackendServer[]> {
  return (await webBackend(api)).servers;
}

/**
 * The web backend: its servers, and the requests waiting in the backend's own
 * queue (for whichever server frees a slot first: with `maxconn`, that is
 * where requests wait, not in a server's queue).
 */
export async function webBackend(api: RuntimeApi): Promise<{ servers: BackendServer[]; queued: number }> {
  const csv = await runtimeApi(api, 'show stat');
  const [header, ...rows] = csv.replace(/^# /, '').trim().split('\n');
  const cols = (header ?? '').split(',');
  const at = (name: string) => cols.indexOf(name);
  const web = rows.map((r) => r.split(',')).filter((f) => f[0] === 'web');
  const backend = web.find((f) => f[1] === 'BACKEND');
  return {
    servers: web
      .filter((f) => f[1] !== 'BACKEND' && f[1] !== 'FRONTEND')
      .map((f) => ({
        name: f[1] ?? '',
        status: f[at('status')] ?? '',
        current: Number(f[at('scur')] ?? 0),
        queued: Number(f[at('qcur')] ?? 0),
        total: Number(f[at('stot')] ?? 0),
      })),
    queued: Number(backend?.[at('qcur')] ?? 0),
  };
}
