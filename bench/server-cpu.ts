// CPU seconds of the servers a scale-out benchmark runs on the same cores
// as the contender (RGW, the OSD and the monitor, PostgreSQL with its
// backends), and of the whole machine: what a figure's wall time was spent
// on besides our own processes.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cpuOf, procStat } from './util.js';

/**
 * A CPU meter per server of a with-scaleout layout (BASE/ceph/pids/*.pid,
 * BASE/pg/data/postmaster.pid): ceph's daemons by name, and 'postgres'
 * (the postmaster, its reaped backends and its live children).
 */
export function serverMeters(cephBase: string, pgData: string): Map<string, () => number> {
  const out = new Map<string, () => number>();
  for (const f of readdirSync(join(cephBase, 'pids'))) {
    const pid = Number(readFileSync(join(cephBase, 'pids', f), 'utf8').trim());
    out.set(f.replace(/\.pid$/, ''), () => cpuOf(pid));
  }
  const postmaster = Number(readFileSync(join(pgData, 'postmaster.pid'), 'utf8').split('\n')[0]);
  out.set('postgres', () => {
    let sum = cpuOf(postmaster, true);
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        if (Number(procStat(`/proc/${p}/stat`).fields[1]) === postmaster) sum += cpuOf(Number(p));
      } catch {
        // gone meanwhile
      }
    }
    return sum;
  });
  return out;
}

/** The machine's busy and total CPU seconds so far (all cores; /proc/stat). */
function machineCpu(): { busy: number; all: number } {
  const t = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = t;
  return { busy: (user + nice + system + irq + softirq + steal) / 100, all: (user + nice + system + idle + iowait + irq + softirq + steal) / 100 };
}

/** CPU seconds each meter (and the machine) spent while `fn` ran. */
export async function cpuDuring<T>(meters: Map<string, () => number>, fn: () => Promise<T>): Promise<{ value: T; used: Map<string, number>; machine: { busy: number; all: number } }> {
  const before = new Map([...meters].map(([n, f]) => [n, f()]));
  const m0 = machineCpu();
  const value = await fn();
  const m1 = machineCpu();
  const used = new Map([...meters].map(([n, f]) => [n, f() - before.get(n)!]));
  return { value, used, machine: { busy: m1.busy - m0.busy, all: m1.all - m0.all } };
}
