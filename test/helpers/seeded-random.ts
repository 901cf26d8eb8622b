// A small seeded PRNG (mulberry32) for randomized tests that must be
// reproducible: the seed comes from an environment variable when set,
// otherwise it is random; tests print it so a failing run can be replayed.
import { randomInt } from 'node:crypto';

export interface SeededRandom {
  readonly seed: number;
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** Integer uniform in [lo, hi). */
  int(lo: number, hi: number): number;
}

export function seededRandom(seed: number): SeededRandom {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    seed: seed >>> 0,
    next,
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    int: (lo, hi) => lo + Math.floor((hi - lo) * next()),
  };
}

/** The seed from `envVar` (a whole number) if set, else a fresh random one. */
export function seedFromEnv(envVar: string, env: NodeJS.ProcessEnv = process.env): number {
  const v = env[envVar];
  if (v === undefined || v === '') return randomInt(0, 2 ** 32 - 1);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${envVar} must be a whole number ≥ 0, got ${JSON.stringify(v)}`);
  return n >>> 0;
}
