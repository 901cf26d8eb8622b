// A small seeded PRNG for the fuzzer: sfc32, seeded through splitmix32.
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
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
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
}

/** The run's seed: $FUZZ_SEED (decimal or 0x-hex) or a fresh random one. */
export function fuzzSeed(env: NodeJS.ProcessEnv = process.env): number {
  const s = env.FUZZ_SEED;
  if (s === undefined || s === '') return randomInt(0x1_0000_0000);
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0 || n >= 0x1_0000_0000) throw new Error(`FUZZ_SEED must be an integer in [0, 2^32), got ${JSON.stringify(s)}`);
  return n;
}
