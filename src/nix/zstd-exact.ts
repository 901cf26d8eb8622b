// zstd frames decoded into exactly the size the caller knows they hold:
// libzstd (zstddec's WebAssembly build) writes into an output of that size
// and fails rather than write past it, so a damaged or hostile frame cannot
// make us allocate more than expected. It runs on the calling thread (the
// S3 store calls it on threads of its own: scaleout/inflate-pool.ts): the
// native binding's pool calls cost 2-3x libzstd's own CPU per byte here
// (output vectors grown and copied, fresh pages each call).
import { ZSTDDecoder } from 'zstddec';

const decoder = new ZSTDDecoder();
let ready: Promise<void> | undefined;

/** Every frame of `data`, which must decode to exactly `size` bytes (else an error). */
export async function zstdDecompressExact(data: Uint8Array, size: number): Promise<Buffer> {
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`zstd: cannot decode to ${size} bytes`);
  await (ready ??= decoder.init());
  // libzstd's errors come back as a negative size, which zstddec turns into an empty result.
  const out = decoder.decode(data, size);
  if (out.length !== size) throw new Error(out.length === 0 ? `zstd: the frames are corrupt or decode to more than the ${size} bytes expected` : `zstd: the frames decode to ${out.length} bytes, ${size} expected`);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}
