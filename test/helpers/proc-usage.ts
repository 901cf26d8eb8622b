// What a process has cost, from /proc: CPU time (user + system, in clock
// ticks of 10 ms on Linux) and peak resident memory.
import { readFileSync } from 'node:fs';

/** utime + stime of `pid`, in clock ticks. */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after its ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of stat(5)
}

/** VmHWM of `pid` in KiB: its peak resident set size. */
export function peakRssKiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for process ${pid}`);
  return Number(m[1]);
}

/** CPU ticks `pid` spends during `ms` milliseconds from now. */
export async function cpuDuring(pid: number, ms: number): Promise<number> {
  const before = cpuTicks(pid);
  await new Promise((r) => setTimeout(r, ms));
  return cpuTicks(pid) - before;
}
