// Page-aligned buffers for O_DIRECT writes, which the kernel refuses from
// memory that is not block-aligned. Node's Buffers come from malloc and are
// not; a WebAssembly memory is page-aligned. Slabs come from arenas of
// fixed size: growing a memory would detach the slabs already handed out,
// and a shared one (which grows in place) is copied into three times slower.

export const SLAB_BYTES = 1 << 20;
const ARENA_SLABS = 8;
const WASM_PAGE = 64 << 10;

export class AlignedSlabs {
  private arena: WebAssembly.Memory | undefined;
  private readonly free: Uint8Array[] = [];
  private made = 0;

  /** At most `maxSlabs` slabs exist, made in arenas of 8 as needed. */
  constructor(readonly maxSlabs: number) {}

  /** A slab, or undefined when all `maxSlabs` are out: the caller writes some other way. */
  take(): Uint8Array | undefined {
    const slab = this.free.pop();
    if (slab) return slab;
    if (this.made >= this.maxSlabs) return undefined;
    const inArena = this.made % ARENA_SLABS;
    if (inArena === 0) {
      const pages = (Math.min(ARENA_SLABS, this.maxSlabs - this.made) * SLAB_BYTES) / WASM_PAGE;
      this.arena = new WebAssembly.Memory({ initial: pages, maximum: pages });
    }
    this.made++;
    return new Uint8Array(this.arena!.buffer, inArena * SLAB_BYTES, SLAB_BYTES);
  }

  give(slab: Uint8Array): void {
    this.free.push(slab);
  }

  /** Slabs made so far (for tests). */
  get size(): number {
    return this.made;
  }

  /** Slabs made and not taken (for tests). */
  get idle(): number {
    return this.free.length;
  }
}

/**
 * The process's slabs for large blob files: 4 in flight and 1 being filled
 * per blob, for a dozen blobs at once; blobs beyond that are written through
 * the page cache.
 */
export const blobSlabs = new AlignedSlabs(64);
