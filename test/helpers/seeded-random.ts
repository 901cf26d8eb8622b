// The one seeded PRNG of the tests (sfc32, seeded through splitmix32):
// randomized tests must be reproducible, so the seed comes from an
// environment variable when set, else it is random, and tests print it so a
// failing run can be replayed.
import { randomInt } from 'node:crypto';

function splitmix32(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x9e3779b9) | 0;
    let t = a ^ (a >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    return (t ^ (t >>> 15)) >>> 0;
  };
}

export class Rng {
  readonly seed: number;
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    const sm = splitmix32(seed);
    this.a = sm();
    this.b = sm();
    this.c = sm();
    this.d = sm();
  }

  /** An independent generator for sub-task `i` (case number), reproducible from the seed alone. */
  static forCase(seed: number, stream: number, i: number): Rng {
    return new Rng(splitmix32(seed ^ Math.imul(stream + 1, 0x85ebca6b) ^ Math.imul(i + 1, 0x9e3779b1))());
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** 0 ≤ n < max. */
  int(max: number): number {
    return max <= 0x1_0000_0000 ? Math.floor((this.u32() / 0x1_0000_0000) * max) : Math.floor(((this.u32() * 0x1_0000_0000 + this.u32()) / 2 ** 64) * max);
  }

  /** lo ≤ n ≤ hi. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
}

export type SeededRandom = Rng;
export const seededRandom = (seed: number): Rng => new Rng(seed);

/** The seed from `envVar` (a whole number, or 0x-hex) if set, else a fresh random one. */
export function seedFromEnv(envVar: string, env: NodeJS.ProcessEnv = process.env): number {
  const v = env[envVar];
  if (v === undefined || v === '') return randomInt(0x1_0000_0000);
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n >= 0x1_0000_0000) throw new Error(`${envVar} must be an integer in [0, 2^32), got ${JSON.stringify(v)}`);
  return n;
}

/** The fuzzer's seed: $FUZZ_SEED. */
export const fuzzSeed = (env: NodeJS.ProcessEnv = process.env): number => seedFromEnv('FUZZ_SEED', env);
