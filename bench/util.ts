// Small helpers shared by the benchmarks: timing, formatting, process CPU and RSS.
import { readFileSync } from 'node:fs';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, value };
}

export const rate = (bytes: number, seconds: number): string => `${(bytes / seconds / 1e9).toFixed(2)} GB/s`;

/**
 * A /proc/PID/stat or /proc/PID/task/TID/stat file: the command name and
 * the fields after it (the name may hold spaces and parentheses, so they
 * start after its last ')'; fields[1] is the parent's pid), and its CPU
 * seconds (utime, stime; cutime + cstime are its reaped children's).
 */
export function procStat(file: string): { name: string; fields: string[]; user: number; system: number; children: number } {
  const s = readFileSync(file, 'utf8');
  const fields = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const sec = (i: number) => Number(fields[i]) / 100; // USER_HZ
  return { name: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), fields, user: sec(11), system: sec(12), children: sec(13) + sec(14) };
}

/** A process's CPU seconds, utime + stime (with `withChildren`, its reaped children's too, e.g. PostgreSQL's exited backends); 0 once it is gone. */
export function cpuOf(pid: number, withChildren = false): number {
  try {
    const s = procStat(`/proc/${pid}/stat`);
    return s.user + s.system + (withChildren ? s.children : 0);
  } catch {
    return 0;
  }
}

/** Peak resident set size of a process, in MiB (Linux VmHWM). */
export function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Deterministic, incompressible-looking bytes, produced in 1 MiB pieces. */
export function* pseudoRandomChunks(total: number, chunk = MiB): Generator<Buffer> {
  const base = Buffer.alloc(chunk);
  let x = 0x9e3779b9;
  for (let i = 0; i < chunk; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    base.writeUInt32LE(x >>> 0, i);
  }
  for (let off = 0, n = 0; off < total; off += chunk, n++) {
    const c = Buffer.from(base.subarray(0, Math.min(chunk, total - off)));
    if (c.length >= 4) c.writeUInt32LE(n, 0); // every piece differs
    yield c;
  }
}

export function table(rows: [string, string, string][]): string {
  const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => `  ${r[0].padEnd(w[0])}  ${r[1].padStart(w[1])}  ${r[2]}`).join('\n');
}

export interface SummaryRow {
  what: string;
  /** The median of the rounds (or the one figure). */
  measured: string;
  /** Ratios to the references measured in the same run, and the rounds. */
  compared: string;
  target?: string;
  met?: boolean;
}

const cell = (s: string): string => s.replace(/\|/g, '\\|');

/**
 * The one table `npm run bench` ends with, in Markdown so the README can
 * take it as it is: each benchmark adds its key figures, each target with
 * its verdict.
 */
export const summary = {
  rows: [] as SummaryRow[],
  markdown(): string {
    const lines = ['| what | measured (median) | compared, in the same run | target | |', '|---|---|---|---|---|'];
    for (const r of this.rows) {
      const met = r.met === undefined ? '' : r.met ? 'met' : '**not met**';
      lines.push(`| ${cell(r.what)} | ${cell(r.measured)} | ${cell(r.compared)} | ${cell(r.target ?? '')} | ${met} |`);
    }
    return lines.join('\n');
  },
};
