// How every contender of the bench is measured: rounds interleaved with the
// other contenders, the median reported with all rounds listed, and dirty
// pages flushed by an untimed `sync` before and after each, so no contender
// pays for the writeback of the one before it.
import { execFileSync } from 'node:child_process';

/** Rounds of every contender (BENCH_ROUNDS; at least 3 unless asked for fewer, for a quick look). */
export const ROUNDS = process.env.BENCH_ROUNDS ? Math.max(1, Number(process.env.BENCH_ROUNDS)) : 3;

/** Writes every dirty page back to disk; not part of any timing. */
export function flush(): void {
  execFileSync('sync');
}

export function seconds(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** `fn` between two untimed flushes; its own duration in seconds. */
export async function flushedAround<T>(fn: () => Promise<T> | T): Promise<{ seconds: number; value: T }> {
  flush();
  const t0 = process.hrtime.bigint();
  const value = await fn();
  const s = seconds(t0);
  flush();
  return { seconds: s, value };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** "rounds 4.1, 4.3, 4.0 s" */
export function listRounds(xs: number[], unit = 's', digits = 2): string {
  return `rounds ${xs.map((x) => x.toFixed(digits)).join(', ')} ${unit}`;
}

/** "met" / "NOT met" for a target, so a reader sees the verdict next to the figure. */
export function verdict(ok: boolean): string {
  return ok ? 'met' : 'NOT met';
}
