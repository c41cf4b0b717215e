import { request } from 'node:http';
import { supervisorUrl } from '../components/supervisor/index.ts';
import { bearer } from '../run/guard.ts';
import { readControlToken } from '../run/private.ts';
import type { ClusterState } from '../run/state.ts';
import { processesOf } from '../topology/select.ts';

/** The topology's supervisor, when it has one. */
export const supervisorOf = (state: ClusterState) => processesOf(state.topology, 'supervisor')[0];

/**
 * One call to a running topology's supervisor (its private control API).
 * No time limit: a deploy takes as long as its servers take to start and drain.
 */
export async function callSupervisor<T>(state: ClusterState, method: 'GET' | 'POST', route: string, body?: unknown) {
  const spec = supervisorOf(state);
  if (!spec) throw new Error(`"${state.topology.name}" runs no supervisor (started without one)`);
  return callControlApi<T>(state, supervisorUrl(spec), 'the supervisor', method, route, body);
}

/** One call to a control API of the topology (the supervisor's, the witness'), with the run's token. */
export async function callControlApi<T>(
  state: ClusterState,
  base: string,
  who: string,
  method: 'GET' | 'POST',
  route: string,
  body?: unknown,
) {
  const url = new URL(route, base);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<{ status: number; body: T }>((resolve, reject) => {
    const headers = {
      ...bearer(readControlToken(state.runDir)),
      ...(payload ? { 'content-type': 'application/json' } : {}),
    };
    const req = request(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as T });
        } catch {
          reject(new Error(`${who} answered ${res.statusCode}: ${text.slice(0, 200)}`));
        }
      });
    });
    req.on('error', (err) => reject(new Error(`${who} does not answer (${err.message})`)));
    req.end(payload);
  });
}
