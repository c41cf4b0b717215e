import { isSameProcess, killHard } from '../process.ts';
import { type ClusterState, postmasterPid } from '../run/index.ts';
import { dataCenterOf } from '../topology/select.ts';

/**
 * A data center's loss, as a power cut does it: every process of it with
 * SIGKILL, and the PostgreSQL servers its Patroni nodes started (they outlive
 * Patroni). Only the processes recorded: a PID whose start time differs is
 * another process now. The dashboard's "kill" button and the drill use it.
 */
export function killDataCenter(state: ClusterState, dataCenter: string): { killed: string[]; postmasters: number[] } {
  const victims = state.processes.filter(
    (p) => dataCenterOf(state.topology, p.name) === dataCenter && isSameProcess(p),
  );
  const postmasters = victims
    .filter((p) => p.kind === 'patroni')
    .map((p) => postmasterPid(state.runDir, p.name))
    .filter((pid): pid is number => pid !== null);
  for (const p of victims) killHard(p.pid);
  for (const pid of postmasters) killHard(pid);
  return { killed: victims.map((p) => p.name), postmasters };
}
