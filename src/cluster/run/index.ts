/** Running a topology: the state store, the orchestrator and status. */

export { queryPrimary } from '../components/db-proxy/query.ts';
export { postmasterPid } from '../components/patroni/index.ts';
export { appConfig, appEnv } from './context.ts';
export { down, leftovers, restart, startAll, type UpOptions, up } from './orchestrator.ts';
export {
  type ClusterState,
  howExited,
  loadState,
  type ProcessExit,
  type RunningProcess,
  readState,
  stateOf,
  updateState,
} from './state.ts';
export { exitText, type ProcessStatus, status, statusTable } from './status.ts';
