import { checkBatch, type BlobBatches, type BlobService, type BlobWriter } from '../blob-service.js';
import { Blake3Stream, b3Hex, checkB3 } from '../digest.js';

const READ_CHUNK = 1 << 20;

export class MemoryBlobService implements BlobService {
  private readonly blobs = new Map<string, Buffer>();

  async stat(digest: Uint8Array) {
    checkB3(digest);
    return this.blobs.has(b3Hex(digest)) ? { chunks: [] } : undefined;
  }

  async sizeOf(digest: Uint8Array): Promise<number | undefined> {
    checkB3(digest);
    return this.blobs.get(b3Hex(digest))?.length;
  }

  async read(digest: Uint8Array): Promise<AsyncIterable<Uint8Array> | undefined> {
    checkB3(digest);
    const data = this.blobs.get(b3Hex(digest));
    if (!data) return undefined;
    return (async function* () {
      for (let off = 0; off < data.length; off += READ_CHUNK) yield data.subarray(off, off + READ_CHUNK);
    })();
  }

  put(): BlobWriter {
    const parts: Buffer[] = [];
    const hash = new Blake3Stream();
    let done = false;
    return {
      write: async (chunk) => {
        if (done) throw new Error('blob writer already closed');
        const copy = Buffer.from(chunk); // callers may reuse their buffers
        hash.update(copy);
        parts.push(copy);
      },
      close: async (signal) => {
        done = true;
        signal?.throwIfAborted();
        const digest = hash.digest();
        const key = b3Hex(digest);
        if (!this.blobs.has(key)) this.blobs.set(key, Buffer.concat(parts));
        return digest;
      },
      abort: async () => {
        done = true;
        parts.length = 0;
      },
    };
  }

  async batches(): Promise<BlobBatches> {
    return {
      maxPutBytes: 4 << 20,
      has: async (digests) => digests.map((d) => (checkB3(d), this.blobs.has(b3Hex(d)))),
      put: async (batch, opts) => {
        if (!opts?.verified) checkBatch(batch);
        for (const b of batch) if (!this.blobs.has(b3Hex(b.digest))) this.blobs.set(b3Hex(b.digest), Buffer.from(b.data));
      },
    };
  }

  async stats() {
    let bytes = 0;
    for (const b of this.blobs.values()) bytes += b.length;
    return { count: this.blobs.size, bytes };
  }

  async close(): Promise<void> {}
}
