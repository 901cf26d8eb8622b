// Large long-lived buffers mapped straight from the kernel, not from malloc.
//
// glibc serves a large malloc with mmap and gives it back on free, but each
// such free raises its mmap threshold to that size (up to 32 MiB): after a
// copy had freed one 9 MiB pack buffer, every later buffer below 9 MiB came
// from its heap, where freed memory stays resident. That was ~45 MiB of a
// copy → S3's peak RSS (measured: 318 MiB, 270 MiB with the threshold
// pinned by MALLOC_MMAP_THRESHOLD_). A WebAssembly memory is mapped and
// unmapped by V8 itself, so these buffers never move that threshold.

const WASM_PAGE = 64 << 10;

/** A zero-filled buffer of `bytes` (rounded up to 64 KiB inside), unmapped once unreachable. */
export function mappedBuffer(bytes: number): Buffer {
  const pages = Math.ceil(bytes / WASM_PAGE);
  const mem = new WebAssembly.Memory({ initial: pages, maximum: pages });
  return Buffer.from(mem.buffer, 0, bytes);
}
