import { spawnSync } from 'node:child_process';

/**
 * Debian packages by the stage that needs them. `scaleout setup` installs the
 * missing ones; later stages add their servers here.
 */
export const debianPackages: Record<string, string[]> = {
  tests: ['chromium'],
  // db and lb presets: PostgreSQL 15, Patroni with etcd, HAProxy.
  database: ['postgresql', 'patroni', 'etcd-server', 'etcd-client'],
  loadBalancer: ['haproxy'],
  // observed: metrics of every process.
  metrics: ['prometheus', 'prometheus-postgres-exporter', 'prometheus-node-exporter', 'prometheus-redis-exporter'],
  // cache preset: Redis with Sentinel.
  cache: ['redis-server', 'redis-sentinel'],
  // cdn preset: the Varnish edge, xkey (tag purges) and its exporter.
  edge: ['varnish', 'varnish-modules', 'prometheus-varnish-exporter'],
  // geoDNS (multi-dc): PowerDNS Authoritative 4.7 with the bind backend (its Lua records are built in).
  dns: ['pdns-server', 'pdns-backend-bind'],
};

export function missingPackages(packages: string[]): string[] {
  return packages.filter((pkg) => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a dpkg-query format, not JavaScript
    const res = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
    return res.status !== 0 || !res.stdout.includes('install ok installed');
  });
}

/** Installs what is missing, and only that; running it twice does nothing the second time. */
export function setup(log: (line: string) => void = console.log): number {
  const wanted = [...new Set(Object.values(debianPackages).flat())];
  if (spawnSync('dpkg-query', ['--version']).status !== 0) {
    log(`scaleout setup: not a Debian system; install these yourself: ${wanted.join(' ')}`);
    return 1;
  }
  const missing = missingPackages(wanted);
  if (missing.length === 0) {
    log(`scaleout setup: all present (${wanted.join(', ')})`);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    log(`scaleout setup: run as root, or run: sudo apt-get install -y ${missing.join(' ')}`);
    return 1;
  }
  log(`scaleout setup: installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args: string[]) => spawnSync('apt-get', args, { stdio: 'inherit', env }).status ?? 1;
  if (run(['update', '-qq']) !== 0) return 1;
  if (run(['install', '-y', '-qq', '--no-install-recommends', ...missing]) !== 0) return 1;
  const still = missingPackages(missing);
  if (still.length > 0) {
    log(`scaleout setup: still missing after install: ${still.join(' ')}`);
    return 1;
  }
  log('scaleout setup: done');
  return 0;
}
