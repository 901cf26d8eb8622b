// Page-aligned buffers for O_DIRECT writes, which the kernel refuses from
// memory that is not block-aligned. Node's Buffers come from malloc and are
// not; a WebAssembly memory is page-aligned, and a shared one grows in place,
// so a slab handed out once stays valid while later ones are added.

export const SLAB_BYTES = 1 << 20;
const WASM_PAGE = 64 << 10;

export class AlignedSlabs {
  private memory: WebAssembly.Memory | undefined;
  private readonly free: Uint8Array[] = [];
  private made = 0;

  /** At most `maxSlabs` slabs exist; memory is reserved up to that and touched as slabs are made. */
  constructor(readonly maxSlabs: number) {}

  /** A slab, or undefined when all `maxSlabs` are out: the caller writes some other way. */
  take(): Uint8Array | undefined {
    const slab = this.free.pop();
    if (slab) return slab;
    if (this.made >= this.maxSlabs) return undefined;
    const pages = SLAB_BYTES / WASM_PAGE;
    this.memory ??= new WebAssembly.Memory({ initial: 0, maximum: this.maxSlabs * pages, shared: true });
    this.memory.grow(pages);
    return new Uint8Array(this.memory.buffer, this.made++ * SLAB_BYTES, SLAB_BYTES);
  }

  give(slab: Uint8Array): void {
    this.free.push(slab);
  }

  /** Slabs made so far (for tests). */
  get size(): number {
    return this.made;
  }
}

/**
 * The process's slabs for large blob files: 4 in flight and 1 being filled
 * per blob, for a dozen blobs at once; blobs beyond that are written through
 * the page cache.
 */
export const blobSlabs = new AlignedSlabs(64);
