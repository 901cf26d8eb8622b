// The packs' index in memory: BLAKE3 digest → (pack, offset, length), in
// typed arrays with open addressing (linear probing; digests are uniform,
// so their first bytes are the hash). A Map of hex strings to objects cost
// ~200 bytes and two heap objects per blob: a daemon's heap grew with its
// store (48k blobs: 10 MiB, a twentieth of its peak RSS), and every full
// collection marked them all. Here a slot is 48 bytes (32 + 4 + 8 + 4), and
// 3/8 to 3/4 of the slots are used: 64-128 bytes per blob, outside the
// heap, which the collector never traces.

const KEY = 32;
const EMPTY = 0;
/** A deleted slot: probes go past it, inserts may reuse it. */
const GONE = 0xffffffff;
const MIN_SLOTS = 1024;

export interface Located<P> {
  pack: P;
  offset: number;
  length: number;
}

export class DigestIndex<P> {
  private slots = MIN_SLOTS;
  private keys = new Uint32Array(MIN_SLOTS * (KEY / 4));
  /** Per slot: EMPTY, GONE, or 1 + the pack's number in `packs`. */
  private packOf = new Uint32Array(MIN_SLOTS);
  private offsets = new Float64Array(MIN_SLOTS);
  private lengths = new Uint32Array(MIN_SLOTS);
  private readonly packs: (P | undefined)[] = [];
  private readonly packNumbers = new Map<P, number>();
  /** Entries, and slots that are not EMPTY (entries and GONE). */
  private count = 0;
  private taken = 0;
  /** The digest being looked up, as words (hex decoded into it: no allocation per lookup). */
  private readonly probe = new Uint32Array(KEY / 4);
  private readonly probeBytes = Buffer.from(this.probe.buffer);

  get size(): number {
    return this.count;
  }

  /** Bytes the table takes (tests: it is the memory, not the heap). */
  get bytes(): number {
    return this.keys.byteLength + this.packOf.byteLength + this.offsets.byteLength + this.lengths.byteLength;
  }

  has(hex: string): boolean {
    return this.find(hex) >= 0;
  }

  get(hex: string): Located<P> | undefined {
    const s = this.find(hex);
    if (s < 0) return undefined;
    return { pack: this.packs[this.packOf[s] - 1]!, offset: this.offsets[s], length: this.lengths[s] };
  }

  lengthOf(hex: string): number | undefined {
    const s = this.find(hex);
    return s < 0 ? undefined : this.lengths[s];
  }

  /** Adds the entry unless the digest (hex, or its 32 bytes) is indexed already: the first place found is kept. */
  add(digest: string | Uint8Array, pack: P, offset: number, length: number): void {
    if ((this.taken + 1) * 4 > this.slots * 3) this.resize(this.count * 4 > this.slots ? this.slots * 2 : this.slots);
    if (!this.decode(digest)) throw new RangeError(`not a BLAKE3 digest: ${typeof digest === 'string' ? JSON.stringify(digest) : `${digest.length} bytes`}`);
    if (!(length >= 0 && length <= 0xffffffff)) throw new RangeError(`packed record of ${length} bytes: more than a pack record holds`);
    const mask = this.slots - 1;
    let reuse = -1;
    for (let s = this.probe[0] & mask; ; s = (s + 1) & mask) {
      const p = this.packOf[s];
      if (p === EMPTY) {
        if (reuse < 0) {
          reuse = s;
          this.taken++;
        }
        break;
      }
      if (p === GONE) {
        if (reuse < 0) reuse = s;
      } else if (this.sameKey(s)) return;
    }
    this.keys.set(this.probe, reuse * (KEY / 4));
    this.packOf[reuse] = this.numberOf(pack) + 1;
    this.offsets[reuse] = offset;
    this.lengths[reuse] = length;
    this.count++;
  }

  /** Drops every entry of `pack`. */
  deletePack(pack: P): void {
    const n = this.packNumbers.get(pack);
    if (n === undefined) return;
    for (let s = 0; s < this.slots; s++) {
      if (this.packOf[s] === n + 1) {
        this.packOf[s] = GONE;
        this.count--;
      }
    }
    this.packNumbers.delete(pack);
    this.packs[n] = undefined;
  }

  *entries(): Generator<[string, Located<P>]> {
    for (let s = 0; s < this.slots; s++) {
      const p = this.packOf[s];
      if (p === EMPTY || p === GONE) continue;
      const hex = Buffer.from(this.keys.buffer, s * KEY, KEY).toString('hex');
      yield [hex, { pack: this.packs[p - 1]!, offset: this.offsets[s], length: this.lengths[s] }];
    }
  }

  /** The sum of the entries' lengths. */
  totalLength(): number {
    let sum = 0;
    for (let s = 0; s < this.slots; s++) {
      const p = this.packOf[s];
      if (p !== EMPTY && p !== GONE) sum += this.lengths[s];
    }
    return sum;
  }

  private find(hex: string): number {
    if (!this.decode(hex)) return -1;
    const mask = this.slots - 1;
    for (let s = this.probe[0] & mask; ; s = (s + 1) & mask) {
      const p = this.packOf[s];
      if (p === EMPTY) return -1;
      if (p !== GONE && this.sameKey(s)) return s;
    }
  }

  private decode(digest: string | Uint8Array): boolean {
    if (typeof digest !== 'string') {
      if (digest.length !== KEY) return false;
      this.probeBytes.set(digest);
      return true;
    }
    return digest.length === KEY * 2 && this.probeBytes.write(digest, 0, KEY, 'hex') === KEY;
  }

  private sameKey(s: number): boolean {
    const k = this.keys;
    const q = this.probe;
    const at = s * (KEY / 4);
    for (let i = 0; i < KEY / 4; i++) if (k[at + i] !== q[i]) return false;
    return true;
  }

  private numberOf(pack: P): number {
    let n = this.packNumbers.get(pack);
    if (n === undefined) {
      n = this.packs.length;
      this.packs.push(pack);
      this.packNumbers.set(pack, n);
    }
    return n;
  }

  /** Rehashes into `slots` slots, leaving the GONE ones behind. */
  private resize(slots: number): void {
    const { keys, packOf, offsets, lengths } = this;
    const old = this.slots;
    this.slots = slots;
    this.keys = new Uint32Array(slots * (KEY / 4));
    this.packOf = new Uint32Array(slots);
    this.offsets = new Float64Array(slots);
    this.lengths = new Uint32Array(slots);
    this.taken = this.count;
    const mask = slots - 1;
    for (let o = 0; o < old; o++) {
      const p = packOf[o];
      if (p === EMPTY || p === GONE) continue;
      let s = keys[o * (KEY / 4)] & mask;
      while (this.packOf[s] !== EMPTY) s = (s + 1) & mask;
      this.keys.set(keys.subarray(o * (KEY / 4), (o + 1) * (KEY / 4)), s * (KEY / 4));
      this.packOf[s] = p;
      this.offsets[s] = offsets[o];
      this.lengths[s] = lengths[o];
    }
  }
}
