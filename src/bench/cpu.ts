import { readdir, readFile } from 'node:fs/promises';
import { procStatFields } from '../platform/pid.ts';

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux). */
const ticksPerSecond = 100;

interface ProcStat {
  ppid: number;
  /** utime + stime, in ticks. */
  ticks: number;
}

async function readProcStat(pid: number): Promise<ProcStat | null> {
  try {
    const fields = procStatFields(await readFile(`/proc/${pid}/stat`, 'utf8'));
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

/**
 * CPU seconds used so far by each named process and its descendants (a
 * PostgreSQL postmaster's backends, a Patroni node's children), a descendant
 * that is itself named counting for itself only.
 */
export async function cpuSecondsByProcess(named: { name: string; pid: number }[]): Promise<Record<string, number>> {
  const stats = new Map<number, ProcStat>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = await readProcStat(Number(entry));
    if (s) stats.set(Number(entry), s);
  }
  const nameOf = new Map(named.map((p) => [p.pid, p.name]));
  const out: Record<string, number> = {};
  for (const [pid, s] of stats) {
    // The nearest named ancestor (or the process itself) is charged.
    let at: number | undefined = pid;
    for (let depth = 0; at !== undefined && at > 1 && depth < 64; depth++) {
      const name = nameOf.get(at);
      if (name !== undefined) {
        out[name] = (out[name] ?? 0) + s.ticks / ticksPerSecond;
        break;
      }
      at = stats.get(at)?.ppid;
    }
  }
  return out;
}

/**
 * The machine's CPU time so far, in seconds, by kind (/proc/stat's first
 * line): busy (this machine's own work), iowait, and steal (time a virtual
 * machine's hypervisor gave another guest: neither ours nor idle).
 */
export async function hostCpuSeconds(): Promise<{ busy: number; iowait: number; steal: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '';
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number) as number[];
  const busy = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0);
  return {
    busy: busy / ticksPerSecond,
    iowait: (iowait ?? 0) / ticksPerSecond,
    steal: (steal ?? 0) / ticksPerSecond,
    total: (busy + (idle ?? 0) + (iowait ?? 0) + (steal ?? 0)) / ticksPerSecond,
  };
}
