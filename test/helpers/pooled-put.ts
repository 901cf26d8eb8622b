// One large Blob Put sent from a few reused 1 MiB buffers, as a client that
// streams a file would: a fresh buffer per MiB would cost the sender a page
// fault per 4 KiB and make garbage of its own (bench/blob-throughput.ts
// measures the Put with it; test/cli/node-flags.test.ts counts the
// daemon's collections during it).
import type { GrpcBlobService } from '../../src/grpc/backends/grpc-blob-service.js';

const MiB = 1 << 20;
/** Buffers sent from, each reused once the client is done with it. */
const POOL = 8;

/**
 * A blob of `size` bytes from copies of `base` (1 MiB): the first 4 bytes
 * of every MiB hold its number and the first MiB's next 4 hold `round`,
 * so every round's blob differs. Resolves with its digest.
 */
export async function putFromPool(blobs: GrpcBlobService, size: number, round: number, base: Buffer): Promise<Buffer> {
  const free = Array.from({ length: POOL }, () => Buffer.from(base));
  let waiting: (() => void) | undefined;
  const w = blobs.put();
  for (let off = 0, n = 0; off < size; off += MiB, n++) {
    while (free.length === 0) await new Promise<void>((r) => (waiting = r));
    const b = free.pop()!.subarray(0, Math.min(MiB, size - off));
    b.writeUInt32LE(n, 0);
    if (n === 0 && b.length >= 8) b.writeUInt32LE(0x80000000 + round, 4);
    await w.write(b, () => {
      free.push(Buffer.from(b.buffer, b.byteOffset, MiB));
      waiting?.();
      waiting = undefined;
    });
  }
  return w.close();
}
