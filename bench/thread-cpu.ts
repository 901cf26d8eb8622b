// CPU seconds of each thread of a child process, from /proc, for the CPU
// benchmarks' THREADS=1 (which thread of a copy or a daemon is busy).
import { readFileSync, readdirSync } from 'node:fs';

/** CPU seconds per thread of a process, by thread name, kept up to date by polling (threads that end keep their last figure). */
export function threadCpu(pid: number): { stop(): Map<string, number> } {
  const last = new Map<string, { name: string; cpu: number }>();
  const poll = (): void => {
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        try {
          const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
          const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
          const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          last.set(tid, { name, cpu: (Number(f[11]) + Number(f[12])) / 100 });
        } catch {
          // the thread ended meanwhile
        }
      }
    } catch {
      // the process ended
    }
  };
  poll();
  const timer = setInterval(poll, 100);
  return {
    stop() {
      poll();
      clearInterval(timer);
      const byThread = new Map<string, number>();
      for (const [tid, t] of last) byThread.set(tid === String(pid) ? 'main' : `${t.name}:${tid}`, t.cpu);
      return byThread;
    },
  };
}

export const showThreads = (m: Map<string, number>): string => [...m].sort((a, b) => b[1] - a[1]).filter(([, c]) => c >= 0.05).map(([n, c]) => `${n} ${c.toFixed(2)}`).join(', ');
