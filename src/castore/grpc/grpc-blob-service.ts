// BlobService over gRPC. Its calls are the hot path of a copy (a Stat, or a
// one-chunk Put, per small file), so they go over the lean node:http2
// client in ../../grpc/h2 rather than grpc-js, which costs 2–3× the CPU
// per call.
import type { BlobService, BlobWriter } from '../blob-service.js';
import type { BlobChunk, PutBlobResponse } from '../messages.js';
import { blobServiceDef } from '../../grpc/definitions.js';
import { acquireH2Connection, type H2Connection, type SharedH2Connection } from '../../grpc/h2/connection.js';
import { unaryOptional, serverStream, clientStream, type ClientStream } from '../../grpc/h2/calls.js';
import { b3String } from '../digest.js';

/** Largest BlobChunk we send; well under the 4 MiB message limit. */
const SEND_CHUNK = 1 << 20;

function blobMethods(conn: H2Connection) {
  const def = blobServiceDef();
  return { Stat: conn.method(def.Stat), Read: conn.method(def.Read), Put: conn.method(def.Put) };
}

export class GrpcBlobService implements BlobService {
  private readonly shared: SharedH2Connection;
  private readonly methods: ReturnType<typeof blobMethods>;
  // Over the network a Stat is a call of its own, and so is a 16 KiB Put:
  // for small blobs, skipping the Stat halves the calls of a fresh copy.
  readonly putWithoutStatUpTo = 16 << 10;

  constructor(readonly offThreadAddr: string) {
    this.shared = acquireH2Connection(offThreadAddr);
    this.methods = blobMethods(this.shared.conn);
  }

  async stat(digest: Uint8Array) {
    await this.shared.ready;
    const res = await unaryOptional(
      this.shared.conn,
      this.methods.Stat,
      { digest, sendChunks: false, sendBao: false },
      `Stat ${b3String(digest)}`,
    );
    return res && { chunks: res.chunks };
  }

  async read(digest: Uint8Array): Promise<AsyncIterable<Uint8Array> | undefined> {
    await this.shared.ready;
    const stream = await serverStream(this.shared.conn, this.methods.Read, { digest }, `Read ${b3String(digest)}`);
    if (!stream) return undefined;
    return (async function* () {
      for await (const chunk of stream) if (chunk.data.length > 0) yield chunk.data;
    })();
  }

  put(): BlobWriter {
    return new GrpcBlobWriter(clientStream(this.shared.conn, this.methods.Put, 'blob Put'));
  }

  async close(): Promise<void> {
    this.shared.release();
  }
}

class GrpcBlobWriter implements BlobWriter {
  constructor(private readonly call: ClientStream<BlobChunk, PutBlobResponse>) {}

  async write(chunk: Uint8Array): Promise<void> {
    for (let off = 0; off < chunk.length; off += SEND_CHUNK) {
      await this.call.write({ data: chunk.subarray(off, off + SEND_CHUNK) });
    }
  }

  async close(): Promise<Buffer> {
    const res = await this.call.finish();
    return Buffer.from(res.digest);
  }

  async abort(): Promise<void> {
    this.call.cancel();
  }
}
