// An exact set of 32-byte digests in two typed arrays (open addressing,
// linear probing): 33 bytes a slot, against ~150 for a Set of hex strings.
// Digests are BLAKE3 outputs, uniformly distributed, so a few of their
// bytes are the hash. It grows by doubling up to `maxSlots`; past 3/4 of
// that it is `full` and the owner must empty it (see spilling-digest-set.ts).

const LEN = 32;
/** Bytes one slot takes (key + used flag), for sizing tables from a budget. */
export const SLOT_BYTES = LEN + 1;
const LOAD = 0.75;

export class DigestTable {
  private keys: Uint8Array;
  private words: Uint32Array;
  private used: Uint8Array;
  private mask: number;
  private readonly maxSlots: number;
  size = 0;

  constructor(initialSlots = 1024, maxSlots = 2 ** 30) {
    this.maxSlots = Math.max(16, 2 ** Math.floor(Math.log2(Math.max(maxSlots, 1))));
    const slots = Math.min(pow2(initialSlots), this.maxSlots);
    this.keys = new Uint8Array(slots * LEN);
    this.words = new Uint32Array(this.keys.buffer);
    this.used = new Uint8Array(slots);
    this.mask = slots - 1;
  }

  /** A table with room for `n` digests (without growing). */
  static sized(n: number): DigestTable {
    return new DigestTable(Math.ceil(n / LOAD) + 1);
  }

  /** No room left, and no growing allowed. */
  get full(): boolean {
    return this.size >= Math.floor(this.used.length * LOAD) && this.used.length >= this.maxSlots;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.keys.length + this.used.length;
  }

  /** Whether `d` (32 bytes at `at`) is in the table. */
  has(d: Uint8Array, at = 0): boolean {
    return this.find(d, at) >= 0;
  }

  /** Adds `d`; false if it was there already. Throws when `full`. */
  add(d: Uint8Array, at = 0): boolean {
    if (this.find(d, at) >= 0) return false;
    if (this.size + 1 > this.used.length * LOAD) {
      if (this.used.length >= this.maxSlots) throw new Error('digest table full');
      this.grow();
    }
    this.insert(d, at);
    return true;
  }

  clear(): void {
    this.used.fill(0);
    this.size = 0;
  }

  /** Every digest, as views into the table (copy them to keep them). */
  *[Symbol.iterator](): Generator<Uint8Array> {
    for (let s = 0; s < this.used.length; s++) if (this.used[s]) yield this.keys.subarray(s * LEN, s * LEN + LEN);
  }

  private find(d: Uint8Array, at: number): number {
    const w0 = word(d, at + 8);
    for (let s = w0 & this.mask; this.used[s]; s = (s + 1) & this.mask) {
      const k = s * 8;
      if (this.words[k + 2] !== w0) continue;
      let same = true;
      for (let i = 0; i < 8 && same; i++) same = this.words[k + i] === word(d, at + i * 4);
      if (same) return s;
    }
    return -1;
  }

  private insert(d: Uint8Array, at: number): void {
    let s = word(d, at + 8) & this.mask;
    while (this.used[s]) s = (s + 1) & this.mask;
    this.keys.set(d.subarray(at, at + LEN), s * LEN);
    this.used[s] = 1;
    this.size++;
  }

  private grow(): void {
    const old = { keys: this.keys, used: this.used };
    const slots = this.used.length * 2;
    this.keys = new Uint8Array(slots * LEN);
    this.words = new Uint32Array(this.keys.buffer);
    this.used = new Uint8Array(slots);
    this.mask = slots - 1;
    this.size = 0;
    for (let s = 0; s < old.used.length; s++) if (old.used[s]) this.insert(old.keys, s * LEN);
  }
}

// Little-endian, as the Uint32Array view reads the key bytes on every
// platform Node runs on.
function word(d: Uint8Array, i: number): number {
  return (d[i] | (d[i + 1] << 8) | (d[i + 2] << 16) | (d[i + 3] << 24)) >>> 0;
}

function pow2(n: number): number {
  let p = 16;
  while (p < n) p *= 2;
  return p;
}
