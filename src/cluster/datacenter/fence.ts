import { waitUntil } from '../process.ts';
import type { ClusterState } from '../run/state.ts';
import { dataCenterRoles, hasDataCenterPair, setClusterRole } from './roles.ts';

/**
 * Before a Patroni node of `dataCenter` is started again: if the topology has
 * a data center pair and this one does not hold the primary, its cluster's
 * configuration (in its own etcd) is made to say "standby of the primary
 * data center" first; the etcd is waited for (20 s: after a whole data
 * center's loss it comes back with the node), and the node does not start
 * without it.
 */
export async function fenceBeforeStart(state: ClusterState, dataCenter: string): Promise<void> {
  if (!hasDataCenterPair(state.topology)) return;
  const { primary } = dataCenterRoles(state);
  if (primary === dataCenter) return;
  let last: Error | undefined;
  await waitUntil(
    async () => {
      try {
        await setClusterRole(state, dataCenter, primary);
        return true;
      } catch (err) {
        last = err as Error;
        return false;
      }
    },
    20_000,
    `${dataCenter}'s etcd, to fence its cluster as a standby of ${primary}`,
  ).catch((err: Error) => {
    throw new Error(`${err.message}${last ? ` (${last.message})` : ''}`);
  });
}
