import type { BlobService, BlobWriter } from '../blob-service.js';
import { blobServiceDef } from '../../grpc/definitions.js';
import { acquireClient, type SharedClient } from '../../grpc/channel.js';
import { unaryOptional, serverStream, clientStream } from '../../grpc/calls.js';
import { b3String } from '../digest.js';

/** Largest BlobChunk we send; well under the 4 MiB message limit. */
const SEND_CHUNK = 1 << 20;

export class GrpcBlobService implements BlobService {
  private readonly shared: SharedClient;
  private readonly def = blobServiceDef();
  // Over the network a Stat is a call of its own, and so is a 16 KiB Put:
  // for small blobs, skipping the Stat halves the calls of a fresh copy.
  readonly putWithoutStatUpTo = 16 << 10;

  constructor(addr: string) {
    this.shared = acquireClient(addr);
  }

  async stat(digest: Uint8Array) {
    await this.shared.ready;
    const res = await unaryOptional(
      this.shared.client,
      this.def.Stat,
      { digest, sendChunks: false, sendBao: false },
      `Stat ${b3String(digest)}`,
    );
    return res && { chunks: res.chunks };
  }

  async read(digest: Uint8Array): Promise<AsyncIterable<Uint8Array> | undefined> {
    await this.shared.ready;
    const stream = await serverStream(this.shared.client, this.def.Read, { digest }, `Read ${b3String(digest)}`);
    if (!stream) return undefined;
    return (async function* () {
      for await (const chunk of stream) if (chunk.data.length > 0) yield chunk.data;
    })();
  }

  put(): BlobWriter {
    const call = clientStream(this.shared.client, this.def.Put, 'blob Put');
    return {
      async write(chunk) {
        for (let off = 0; off < chunk.length; off += SEND_CHUNK) {
          await call.write({ data: chunk.subarray(off, off + SEND_CHUNK) });
        }
      },
      async close() {
        const res = await call.finish();
        return Buffer.from(res.digest);
      },
      async abort() {
        call.cancel();
      },
    };
  }

  async close(): Promise<void> {
    this.shared.release();
  }
}
