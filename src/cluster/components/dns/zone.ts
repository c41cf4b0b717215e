/**
 * The site's zone for PowerDNS Authoritative 4.7 (bind backend, Lua
 * records): `<site>.<zone>` answers the closest healthy data center's edge.
 * Each data center has the client subnets it is closest to; a query whose
 * client subnet (EDNS Client Subnet, else its source address) is in one gets
 * that data center's edge first and the others after it, and `ifurlup` drops
 * an edge whose health URL does not answer 200 (PowerDNS checks it every
 * second in the background). A client in no listed subnet gets the first
 * data center's order.
 */
export interface ZoneDataCenter {
  name: string;
  /** Client subnets (CIDR) this data center is closest to. */
  clients: string[];
  /** Its edge's address (what the name resolves to) and port (the health check's). */
  edge: { host: string; port: number };
}

export interface ZoneOptions {
  zone: string;
  /** The site's label in the zone: `www`. */
  site: string;
  ttl: number;
  /** The name server's own address (its NS record's A). */
  nameServer: string;
  dataCenters: ZoneDataCenter[];
  /** The path each edge answers its health on: `/readyz`. */
  healthPath: string;
  /**
   * The health aggregator (health.ts): when given, PowerDNS asks it whether
   * each data center is up (`ifurlextup`), with its hysteresis, instead of
   * checking each edge itself (`ifurlup`: down after one failed check).
   */
  aggregator?: { host: string; port: number };
}

const lua = (s: string) => s.replaceAll('\\', '\\\\').replaceAll('"', '\\"');
const list = (xs: string[]) => `{${xs.map((x) => `'${x}'`).join(',')}}`;

/** The edges in the order a client of data center `first` is given them. */
const orderFrom = (dcs: ZoneDataCenter[], first: number) =>
  [...dcs.slice(first), ...dcs.slice(0, first)].map((d) => `{'${d.edge.host}'}`).join(',');

export function renderZone(o: ZoneOptions): string {
  const [first] = o.dataCenters;
  if (!first) throw new Error('a zone needs at least one data center');
  const port = first.edge.port;
  if (o.dataCenters.some((d) => d.edge.port !== port)) throw new Error("every data center's edge must use one port");
  const url = `http://${o.site}.${o.zone}:${port}${o.healthPath}`;
  const { aggregator } = o;
  const check = (order: number) => {
    if (!aggregator) return `ifurlup('${url}', {${orderFrom(o.dataCenters, order)}}, {timeout=1})`;
    const ordered = [...o.dataCenters.slice(order), ...o.dataCenters.slice(0, order)];
    const groups = ordered.map(
      (d) => `{['${d.edge.host}']='http://${aggregator.host}:${aggregator.port}/up/${d.name}'}`,
    );
    return `ifurlextup({${groups.join(',')}}, {timeout=1})`;
  };
  const branches = o.dataCenters.map(
    (d, i) => `${i === 0 ? 'if' : 'elseif'} netmask(${list(d.clients)}) then return ${check(i)}`,
  );
  const site = `;${branches.join(' ')} else return ${check(0)} end`;
  return [
    `$ORIGIN ${o.zone}.`,
    `$TTL ${o.ttl}`,
    `@ IN SOA ns1.${o.zone}. hostmaster.${o.zone}. 1 3600 600 604800 ${o.ttl}`,
    `@ IN NS ns1.${o.zone}.`,
    `ns1 IN A ${o.nameServer}`,
    // Each data center by name, without geo or health: for operators and tests.
    ...o.dataCenters.map((d) => `${d.name} IN A ${d.edge.host}`),
    `${o.site} IN LUA A "${lua(site)}"`,
    // What the server took the client to be (its source address, or the client subnet it was sent).
    `whoami IN LUA TXT "bestwho:toString()"`,
    '',
  ].join('\n');
}

/** PowerDNS' own settings: the bind backend with this one zone, Lua records, health checks every second, no caches. */
export function pdnsConfig(o: {
  dir: string;
  listen: { host: string; port: number };
  zone: string;
  api?: { host: string; port: number; key: string };
}): { 'pdns.conf': string; 'named.conf': string } {
  return {
    'pdns.conf': [
      'launch=bind',
      `bind-config=${o.dir}/named.conf`,
      `local-address=${o.listen.host}`,
      `local-port=${o.listen.port}`,
      `socket-dir=${o.dir}`,
      'daemon=no',
      'guardian=no',
      'disable-syslog=yes',
      'enable-lua-records=yes',
      'lua-health-checks-interval=1',
      // Drop a health check that was not asked about for a minute (the default is an hour).
      'lua-health-checks-expire-delay=60',
      'edns-subnet-processing=yes',
      // A cache would keep a dead data center's answer after the check saw it die.
      'cache-ttl=0',
      'query-cache-ttl=0',
      'negquery-cache-ttl=0',
      'loglevel=4',
      ...(o.api
        ? ['webserver=yes', `webserver-address=${o.api.host}`, `webserver-port=${o.api.port}`, `api-key=${o.api.key}`]
        : []),
      '',
    ].join('\n'),
    'named.conf': `zone "${o.zone}" { type master; file "${o.dir}/${o.zone}.zone"; };\n`,
  };
}
