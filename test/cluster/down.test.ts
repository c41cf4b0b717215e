import { expect, it } from 'vitest';
import { isLeader, patroniCluster } from '../../src/cluster/components/patroni/cluster.ts';
import { isAlive, killHard, sleep, tcpOpen } from '../../src/cluster/process.ts';
import { postmasterPid } from '../../src/cluster/run/index.ts';
import { allProcesses, type ProcessSpec } from '../../src/cluster/topology/index.ts';
import { startTopology } from '../support/cluster.ts';

type PatroniSpec = Extract<ProcessSpec, { kind: 'patroni' }>;

it('down after the leader’s Patroni was killed with SIGKILL stops the PostgreSQL it left running: nothing of the topology remains', async () => {
  const topo = await startTopology('lb');
  let orphan: number | null = null;
  let port: { host: string; port: number } | undefined;
  try {
    const nodes = allProcesses(topo.state.topology).filter((p): p is PatroniSpec => p.kind === 'patroni');
    const leader = ((await patroniCluster(nodes)) ?? []).find(isLeader)?.name as string;
    port = nodes.find((n) => n.name === leader)?.postgres;
    orphan = postmasterPid(topo.state.runDir, leader);
    expect(orphan).not.toBeNull();
    killHard(topo.state.processes.find((p) => p.name === leader)?.pid as number);
    await sleep(2000);
    // What Patroni leaves behind: its PostgreSQL, still running and still holding the port.
    expect(isAlive(orphan as number)).toBe(true);
    expect(await tcpOpen(port?.host as string, port?.port as number)).toBe(true);
  } finally {
    expect(await topo.stop()).toEqual([]);
  }
  expect(isAlive(orphan as number)).toBe(false);
  // The port is free again, so the next `up` can take it.
  expect(await tcpOpen(port?.host as string, port?.port as number)).toBe(false);
}, 180_000);
