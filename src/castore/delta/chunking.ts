// Content-defined pieces of a large blob, for delta uploads (delta-store.ts):
// a blob that differs from one the store has by an append, an insertion or
// a few changed bytes keeps most of its chunks, whose digests tell client
// and server which bytes they already share. Boundaries come from a gear
// hash (FastCDC's rolling hash: it depends on the last 32 bytes only), so
// an insertion moves the boundaries after it along with the content.
import { blake3 } from '../digest.js';

/** Both sides must cut alike: the table is fixed (xorshift32 from a fixed seed). */
const GEAR = ((): Int32Array => {
  const t = new Int32Array(256);
  let x = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    t[i] = x | 0;
  }
  return t;
})();

export const CHUNK_MIN = 16 << 10;
export const CHUNK_MAX = 256 << 10;
/** 16 bits: a cut every 64 KiB on average after the minimum. */
const CHUNK_MASK = 0xffff0000 | 0;

export interface Chunk {
  length: number;
  digest: Buffer;
}

/** Cuts a byte stream into chunks (push the bytes in order, then end()). */
export class Chunker {
  readonly chunks: Chunk[] = [];
  /** The current chunk's bytes, gathered to be hashed once (≤ CHUNK_MAX). */
  private readonly pending = Buffer.allocUnsafe(CHUNK_MAX);
  private len = 0;
  private h = 0;

  push(buf: Uint8Array): void {
    let i = 0;
    let from = 0;
    const n = buf.length;
    while (i < n) {
      if (this.len < CHUNK_MIN) {
        // No cut before the minimum: its bytes are not even looked at.
        const skip = Math.min(CHUNK_MIN - this.len, n - i);
        i += skip;
        this.len += skip;
        continue;
      }
      const stop = Math.min(n, i + CHUNK_MAX - this.len);
      let h = this.h;
      let j = i;
      let cut = false;
      for (; j < stop; j++) {
        h = ((h << 1) + GEAR[buf[j]]) | 0;
        if ((h & CHUNK_MASK) === 0) {
          j++;
          cut = true;
          break;
        }
      }
      this.len += j - i;
      this.h = h;
      i = j;
      if (cut || this.len === CHUNK_MAX) {
        this.gather(buf.subarray(from, i));
        from = i;
        this.cut();
      }
    }
    if (from < n) this.gather(buf.subarray(from, n));
  }

  /** The chunks of everything pushed. */
  end(): Chunk[] {
    if (this.len > 0) this.cut();
    return this.chunks;
  }

  private gathered = 0;

  private gather(bytes: Uint8Array): void {
    this.pending.set(bytes, this.gathered);
    this.gathered += bytes.length;
  }

  private cut(): void {
    this.chunks.push({ length: this.len, digest: blake3(this.pending.subarray(0, this.gathered)) });
    this.len = this.gathered = this.h = 0;
  }
}

/** The chunks of bytes at hand. */
export function chunksOf(bytes: Uint8Array): Chunk[] {
  const c = new Chunker();
  c.push(bytes);
  return c.end();
}

/**
 * Hooks: a few digests that find a similar blob among the large blobs a
 * store has (hook-index.ts) without chunking either. The blob is seen as
 * regions of HOOK_REGION bytes; in each, the first position (at least 32
 * bytes in, so the gear hash depends on the content alone) where the gear
 * hash matches HOOK_MASK is an anchor, and the BLAKE3 of the HOOK_BYTES
 * after it is the region's hook. A change leaves the hooks of the regions
 * it does not touch as they were, and an insertion shifts an anchor with
 * its content. About HOOK_BYTES + 32 KiB of each region are looked at.
 */
export const HOOK_REGION = 2 << 20;
export const HOOK_BYTES = 16 << 10;
/** 15 bits: an anchor within ~32 KiB of a region's start. */
const HOOK_MASK = 0xfffe0000 | 0;

export class HookFinder {
  readonly hooks: Buffer[] = [];
  /** Where the current region starts. */
  private region = 0;
  /** The next offset to look at. */
  private at = 0;
  private h = 0;
  /** Once an anchor is found: the hook's bytes, gathered. */
  private hookStart = -1;
  /** Made at the first anchor: a daemon's writer has a finder per Put, and most small blobs end before one. */
  private hookBytes: Buffer | undefined;
  private gathered = 0;

  constructor(private readonly size: number) {}

  /** The next offset whose bytes are needed; ≥ size once done. */
  next(): number {
    return this.at;
  }

  /** Bytes starting at offset `offset` (≤ next()). */
  push(buf: Uint8Array, offset: number): void {
    while (this.at < this.size && this.at < offset + buf.length) {
      const i = this.at - offset;
      if (i < 0) throw new Error(`HookFinder: bytes from ${offset} pushed, ${this.at} needed`);
      if (this.hookStart >= 0) this.gatherHook(buf, i);
      else this.scan(buf, i, offset);
    }
  }

  private scan(buf: Uint8Array, i: number, offset: number): void {
    const regionEnd = Math.min(this.region + HOOK_REGION, this.size);
    const stop = Math.min(buf.length, regionEnd - offset);
    const checkFrom = this.region + 32 - offset;
    let h = this.h;
    let j = i;
    for (; j < stop; j++) {
      h = ((h << 1) + GEAR[buf[j]]) | 0;
      if ((h & HOOK_MASK) === 0 && j >= checkFrom) {
        j++;
        this.hookStart = offset + j;
        this.gathered = 0;
        break;
      }
    }
    this.h = h;
    this.at = offset + j;
    if (this.hookStart >= 0) {
      // A hook that would not fit in the blob is no hook.
      if (this.hookStart + HOOK_BYTES > this.size) this.nextRegion();
    } else if (this.at >= regionEnd) this.nextRegion();
  }

  private gatherHook(buf: Uint8Array, i: number): void {
    const n = Math.min(buf.length - i, HOOK_BYTES - this.gathered);
    this.hookBytes ??= Buffer.allocUnsafe(HOOK_BYTES);
    this.hookBytes.set(buf.subarray(i, i + n), this.gathered);
    this.gathered += n;
    this.at += n;
    if (this.gathered === HOOK_BYTES) {
      this.hooks.push(blake3(this.hookBytes));
      this.nextRegion();
    }
  }

  private nextRegion(): void {
    this.region += HOOK_REGION;
    // A hook may run past its region's end: the next region starts after it.
    while (this.region < this.at) this.region += HOOK_REGION;
    this.at = this.region;
    this.h = 0;
    this.hookStart = -1;
  }
}
