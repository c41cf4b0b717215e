import { componentOf } from '../components/registry.ts';
import { isSameProcess, killHard } from '../process.ts';
import type { ClusterState } from '../run/index.ts';
import { straysOf } from '../run/state.ts';
import { allProcesses, dataCenterOf } from '../topology/select.ts';

/**
 * A data center's loss, as a power cut does it: every process of it with
 * SIGKILL, and what they started that outlives them (the PostgreSQL servers
 * of its Patroni nodes, the cache process of its Varnish edge), found the way
 * `down` finds them. Only the processes recorded: a PID whose start time
 * differs is another process now. The dashboard's "kill" button and the drill
 * use it.
 */
export function killDataCenter(
  state: ClusterState,
  dataCenter: string,
): { killed: string[]; leftovers: { name: string; pid: number }[] } {
  const victims = state.processes.filter(
    (p) => dataCenterOf(state.topology, p.name) === dataCenter && isSameProcess(p),
  );
  const leftovers = allProcesses(state.topology)
    .filter((spec) => dataCenterOf(state.topology, spec.name) === dataCenter)
    .flatMap((spec) => componentOf(spec).leftovers?.(spec, state) ?? [])
    .map(({ name, pid }) => ({ name, pid }))
    // And what a failed restart of one of them left running (a stray): a power cut takes it too.
    .concat(
      straysOf(state, isSameProcess, (name) => dataCenterOf(state.topology, name) === dataCenter).map(
        ({ name, pid }) => ({ name, pid }),
      ),
    );
  for (const p of victims) killHard(p.pid);
  for (const l of leftovers) killHard(l.pid);
  return { killed: victims.map((p) => p.name), leftovers };
}
