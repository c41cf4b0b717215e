import { witnessUrl } from '../components/witness/index.ts';
import type { ClusterState } from '../run/state.ts';
import { callControlApi } from '../supervisor/client.ts';
import { processesOf } from '../topology/select.ts';

const witnessOf = (state: ClusterState) => {
  const [w] = processesOf(state.topology, 'witness');
  if (!w) throw new Error(`${state.topology.name} has no witness (preset multi-dc has one)`);
  return w;
};

/** One call to the witness' control API (`scaleout dc …`, the drill); a 4xx or 5xx throws with its error. */
export async function callWitness<T>(state: ClusterState, method: 'GET' | 'POST', route: string, body?: unknown) {
  const res = await callControlApi<T & { error?: string }>(
    state,
    witnessUrl(witnessOf(state)),
    'the witness',
    method,
    route,
    body,
  );
  if (res.status >= 400) throw new Error(`the witness: ${res.body.error ?? res.status}`);
  return res.body;
}
