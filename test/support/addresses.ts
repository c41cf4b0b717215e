import net from 'node:net';

/**
 * Addresses for cluster tests, from the fork's pool id (1..maxWorkers) rather
 * than Math.random: forks running at once never share an octet, and within a
 * fork (files run one after another) each topology takes the next one.
 */
const perFork = 25;
const poolId = Math.max(1, Number(process.env.VITEST_POOL_ID ?? 1));
let next = 0;

/** The second octet (127.<octet>.x.y) and public port of the next topology this fork starts. */
export function nextTopologyAddress(): { octet: number; port: number } {
  const slot = next++ % perFork;
  return { octet: 20 + ((poolId - 1) % 8) * perFork + slot, port: 18_000 + poolId * 100 + slot };
}

/** A random loopback address of 127.0.40–239.x, for a test's own servers (cluster topologies use 127.20+). */
export const randomLoopbackHost = (): string =>
  `127.0.${40 + Math.floor(Math.random() * 200)}.${1 + Math.floor(Math.random() * 250)}`;

/** A free port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}
