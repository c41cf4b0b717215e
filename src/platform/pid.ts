import { readFileSync } from 'node:fs';

/** True while the process exists and is not a zombie (killed but not yet reaped still answers signal 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/**
 * When the process started, in clock ticks since boot (/proc/<pid>/stat, field
 * 22), or null when there is no such process. With the PID it names one
 * process for good: a PID reused later has another start time.
 */
export function startTimeOf(pid: number): number | null {
  try {
    const ticks = Number(procStatFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))[19]);
    return Number.isFinite(ticks) ? ticks : null;
  } catch {
    return null;
  }
}

/**
 * The fields of a /proc/<pid>/stat line after the command (which may hold
 * spaces and parentheses, so it ends at the last ')'): index 0 is the state,
 * 1 the parent's PID, 11 and 12 user and system ticks, 19 the start time.
 */
export const procStatFields = (stat: string): string[] => stat.slice(stat.lastIndexOf(')') + 2).split(' ');

/** True while `pid` is still the process that was recorded (same start time); without a record, while it lives. */
export function isSameProcess(p: { pid: number; startTime?: number }): boolean {
  if (!isAlive(p.pid)) return false;
  return p.startTime === undefined || startTimeOf(p.pid) === p.startTime;
}
