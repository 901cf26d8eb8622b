// @mongodb-js/zstd's native binding, called directly: the package's JS
// wrapper drops the level argument (every call compressed at the library's
// default), so a configured level was silently ignored. Both run on libuv's
// thread pool.
import { createRequire } from 'node:module';

interface Zstd {
  compress(data: Uint8Array, level: number): Promise<Buffer>;
  decompress(data: Uint8Array): Promise<Buffer>;
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

/** Calls made so far (tests: batching is seen in them). */
export const zstdCalls = { decompress: 0 };

/** Every frame of `data`, decoded (the output is not bounded: callers check sizes they know). */
export async function zstdDecompress(data: Uint8Array): Promise<Buffer> {
  zstdCalls.decompress++;
  try {
    return await binding.decompress(data);
  } catch (err) {
    throw new Error(`zstd: ${(err as Error).message}`, { cause: err });
  }
}
