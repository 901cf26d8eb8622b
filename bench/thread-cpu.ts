// CPU seconds of each thread of a child process, from /proc, for the CPU
// benchmarks' THREADS=1 (which thread of a copy or a daemon is busy).
import { readdirSync } from 'node:fs';
import { procStat } from './util.js';

/** CPU seconds per thread of a process, by thread name, kept up to date by polling (threads that end keep their last figure). */
export function threadCpu(pid: number): { stop(): Map<string, number> } {
  const last = new Map<string, { name: string; cpu: number }>();
  const poll = (): void => {
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        try {
          const s = procStat(`/proc/${pid}/task/${tid}/stat`);
          last.set(tid, { name: s.name, cpu: s.user + s.system });
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
