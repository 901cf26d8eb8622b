// Memory for the small files a copy reads, shared with the upload thread
// (if there is one). A fresh buffer per file (an ArrayBuffer each above
// 4 KiB) cost tens of thousands of external allocations, which V8 answers
// with full garbage collections, and every byte read landed in memory the
// process had not touched yet: a page fault per 4 KiB, as much system time
// as the read itself. Files are read into regions of a few fixed
// SharedArrayBuffer slabs instead; the upload thread sends from the same
// memory, and a slab is reused once every region in it is settled.

const SLAB_BYTES = 4 << 20;

interface Slab {
  sab: SharedArrayBuffer;
  used: number;
  /** Regions handed out and not yet released. */
  live: number;
}

export class SharedSlabs {
  private readonly bySab = new Map<SharedArrayBuffer, Slab>();
  private readonly free: Slab[] = [];
  private current: Slab | undefined;

  /** At most `maxSlabs` slabs exist; past that, regions are fresh buffers. */
  constructor(private readonly maxSlabs: number) {}

  /** `size` bytes to read into; release() them once nobody needs them. */
  region(size: number): Buffer {
    if (size === 0 || size > SLAB_BYTES) return Buffer.allocUnsafe(size);
    if (!this.current || this.current.used + size > SLAB_BYTES) {
      const next = this.free.pop() ?? this.make();
      if (!next) return Buffer.allocUnsafe(size);
      const old = this.current;
      this.current = next;
      this.retire(old);
    }
    const s = this.current;
    const b = Buffer.from(s.sab, s.used, size);
    s.used += size;
    s.live++;
    return b;
  }

  /** Whether region(size) can be served from the slabs now (otherwise it would be fresh memory). */
  canServe(size: number): boolean {
    if (size === 0 || size > SLAB_BYTES) return true;
    return (this.current !== undefined && this.current.used + size <= SLAB_BYTES) || this.free.length > 0 || this.bySab.size < this.maxSlabs;
  }

  /** Whether `b` lies in one of the slabs. */
  owns(b: Uint8Array): boolean {
    return b.buffer instanceof SharedArrayBuffer && this.bySab.has(b.buffer);
  }

  /** The region `b` (from region(), or a view into it) is no longer needed by anyone. */
  release(b: Uint8Array): void {
    const s = b.buffer instanceof SharedArrayBuffer ? this.bySab.get(b.buffer) : undefined;
    if (!s) return;
    s.live--;
    if (s.live === 0) {
      if (s === this.current) s.used = 0;
      else this.retire(s);
    }
  }

  /** Slabs made so far, and how many are free (for tests). */
  get counts(): { made: number; free: number } {
    return { made: this.bySab.size, free: this.free.length };
  }

  private make(): Slab | undefined {
    if (this.bySab.size >= this.maxSlabs) return undefined;
    const s: Slab = { sab: new SharedArrayBuffer(SLAB_BYTES), used: 0, live: 0 };
    this.bySab.set(s.sab, s);
    return s;
  }

  /** A slab no longer current goes back to the free list once nothing in it is live. */
  private retire(s: Slab | undefined): void {
    if (!s || s === this.current || s.live > 0) return;
    s.used = 0;
    this.free.push(s);
  }
}
