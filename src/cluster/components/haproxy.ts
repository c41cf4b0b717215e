import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { type StartedProcess, startProcess, tcpOpen, waitUntil } from '../process.ts';
import type { ProcessSpec } from '../topology.ts';
import { requireBinaries } from './postgres.ts';

type LoadBalancer = Extract<ProcessSpec, { kind: 'loadBalancer' }>;
type DbProxy = Extract<ProcessSpec, { kind: 'dbProxy' }>;
type Web = Extract<ProcessSpec, { kind: 'web' }>;
type Patroni = Extract<ProcessSpec, { kind: 'patroni' }>;

/**
 * The public load balancer. Active health checks on /readyz every 500 ms take
 * a dead server out after two failures. Requests that failed to connect are
 * retried on another server (redispatch); idempotent requests are also retried
 * when a server dies mid-answer. HAProxy sets the request id that the web
 * servers log.
 */
export function loadBalancerConfig(lb: LoadBalancer, webs: Web[]): string {
  const servers = webs.map((w) => `    server ${w.name} ${w.listen.host}:${w.listen.port} check`).join('\n');
  return `global
    maxconn 4096
    stats socket ipv4@${lb.stats.host}:${lb.stats.port + 1} level admin
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
    timeout http-request 10s
    timeout queue 10s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response junk-response response-timeout 502 503 504

frontend public
    bind ${lb.listen.host}:${lb.listen.port}
    unique-id-format %{+X}o%ci-%cp-%Ts-%rt-%pid
    # The edge names every request; the web servers log this id, and so does this log line.
    http-request set-header X-Request-Id %[unique-id]
    log-format "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %tsc %{+Q}r reqId=%ID"
    http-request set-header X-Forwarded-Proto http
    # Who the client is, the balancer alone says: whatever the client sent is dropped, then forwardfor adds its address.
    http-request del-header X-Forwarded-For
    http-request del-header X-Real-IP
    http-request del-header Forwarded
    default_backend web

backend web
    balance roundrobin
    # Connections to the web servers come from the balancer's own address: the one address they trust for X-Forwarded-For.
    source ${lb.listen.host}
    # A POST that reached a server is never sent twice; only connection failures are retried for it.
    http-request disable-l7-retry if METH_POST
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2
${servers}

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

listen postgres_replicas
    bind ${proxy.replicas.host}:${proxy.replicas.port}
    balance roundrobin
    option httpchk OPTIONS /replica
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
  writeFileSync(file, config);
  const proc = startProcess({
    command: '/usr/sbin/haproxy',
    args: ['-W', '-db', '-f', file],
    log: path.join(runDir, 'logs', `${name}.log`),
    cwd: runDir,
  });
  await waitUntil(() => tcpOpen(probe.host, probe.port), 15_000, `${name} listening on ${probe.host}:${probe.port}`);
  return proc;
}
