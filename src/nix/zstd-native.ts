// @mongodb-js/zstd's native binding, called directly: the package's JS
// wrapper drops the level argument (every call compressed at the library's
// default), so a configured level was silently ignored. It runs on libuv's
// thread pool. Decoding is zstd-exact.ts's (bounded by the size expected).
import { createRequire } from 'node:module';

interface Zstd {
  compress(data: Uint8Array, level: number): Promise<Buffer>;
}

const binding = createRequire(import.meta.url)('@mongodb-js/zstd/bindings.js') as Zstd;

/** One zstd frame of `data` at `level`. */
export async function zstdCompress(data: Uint8Array, level: number): Promise<Buffer> {
  try {
    return await binding.compress(data, level);
  } catch (err) {
    throw new Error(`zstd: ${(err as Error).message}`, { cause: err });
  }
}
