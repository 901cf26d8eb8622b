// BlobService over gRPC. Its calls are the hot path of a copy (a Stat, or a
// one-chunk Put, per small file), so they go over the lean node:http2
// client in ../../grpc/h2 rather than grpc-js, which costs 2–3× the CPU
// per call.
import { status } from '../status-codes.js';
import { type BlobBatches, type BlobService, type BlobWriter } from '../../castore/blob-service.js';
import type { BlobChunk, PutBlobResponse } from '../../castore/messages.js';
import { blobBatchServiceDef, blobDeltaServiceDef, blobFromPathServiceDef, blobServiceDef } from '../definitions.js';
import type { BlobsFromPath } from '../../castore/from-path-messages.js';
import type { BlobDeltas, DeltaPart } from '../../castore/delta/delta-messages.js';
import { putBlobsParts } from '../../castore/batch-messages.js';
import { acquireH2Connection, type H2Connection, type SharedH2Connection } from '../h2/connection.js';
import { unary, unaryOptional, serverStream, clientStream, type ClientStream } from '../h2/calls.js';
import { b3String } from '../../castore/digest.js';
import { CastoreError } from '../../castore/errors.js';

/** Largest BlobChunk we send; well under the 4 MiB message limit. */
const SEND_CHUNK = 1 << 20;
/** BlobChunks from this size on are sent as head and data (splitChunk). */
const SPLIT_FROM = 64 << 10;
/** Largest batch Put we send (less if the server says so): a few ms of work for either side. */
const SEND_BATCH = 3 << 20;

function blobMethods(conn: H2Connection) {
  const def = blobServiceDef();
  const batch = blobBatchServiceDef();
  const delta = blobDeltaServiceDef();
  return {
    Stat: conn.method(def.Stat),
    Read: { ...conn.method(def.Read), dataPieces: true },
    Put: { ...conn.method(def.Put), split: splitChunk },
    Has: conn.method(batch.Has),
    PutMany: { ...conn.method(batch.Put), split: putBlobsParts },
    FindBase: conn.method(delta.FindBase),
    PutDelta: conn.method(delta.Put),
    PutFromPath: conn.method(blobFromPathServiceDef().Put),
  };
}

/**
 * A large BlobChunk as its field header and its data: a file's chunks go
 * out without a copy, and without an allocation of as many bytes (which
 * V8 answers with garbage collections).
 */
export function splitChunk(chunk: BlobChunk): Uint8Array[] | undefined {
  let n = chunk.data.length;
  if (n < SPLIT_FROM) return undefined;
  const head = [0x0a]; // field 1, length-delimited
  for (; n >= 0x80; n = Math.floor(n / 128)) head.push((n % 128) | 0x80);
  head.push(n);
  return [Buffer.from(head), chunk.data];
}

/** Whether a call failed because the server lacks the method (any other tvix-store). */
function unimplemented(err: unknown): boolean {
  const cause = (err as Error).cause;
  return cause instanceof Error && (cause as { code?: number }).code === status.UNIMPLEMENTED;
}

/** An answer asked for once and remembered; a failure is not (the next call asks again). */
class Probe<T> {
  private answer: Promise<T> | undefined;
  constructor(private readonly ask: () => Promise<T>) {}
  get(): Promise<T> {
    this.answer ??= this.ask().catch((err) => {
      this.answer = undefined;
      throw err;
    });
    return this.answer;
  }
}

export class GrpcBlobService implements BlobService {
  private readonly shared: SharedH2Connection;
  private readonly methods: ReturnType<typeof blobMethods>;
  private readonly batchProbe = new Probe(() => this.probeBatches());
  private readonly deltaProbe = new Probe(() => this.probeDeltas());
  private readonly fromPathProbe = new Probe(() => this.probeFromPath());
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

  /**
   * nix-castore's batch service, if the server has it: asked once with an
   * empty Has; UNIMPLEMENTED (any other tvix-store) means no.
   */
  batches(): Promise<BlobBatches | undefined> {
    return this.batchProbe.get();
  }

  private async probeBatches(): Promise<BlobBatches | undefined> {
    await this.shared.ready;
    const { conn } = this.shared;
    const { Has, PutMany } = this.methods;
    let max: number;
    try {
      max = (await unary(conn, Has, { digests: [] }, 'BlobBatchService.Has')).maxPutBytes;
    } catch (err) {
      if (unimplemented(err)) return undefined;
      throw err;
    }
    return {
      maxPutBytes: Math.min(SEND_BATCH, max > 0 ? max - 1024 : SEND_BATCH),
      has: async (digests) => {
        const res = await unary(conn, Has, { digests }, `BlobBatchService.Has (${digests.length} blobs)`);
        if (res.present.length !== digests.length) {
          throw new CastoreError('internal', `BlobBatchService.Has: asked about ${digests.length} blobs, the server answered for ${res.present.length}`);
        }
        return res.present;
      },
      put: async (blobs) => {
        await unary(conn, PutMany, { blobs }, `BlobBatchService.Put (${blobs.length} blobs)`);
      },
    };
  }

  /**
   * A daemon on this machine that reads files itself, if it offers that to
   * this client: only over a unix socket, asked once with an empty Put;
   * UNIMPLEMENTED or no directories means no.
   */
  fromPath(): Promise<BlobsFromPath | undefined> {
    return this.fromPathProbe.get();
  }

  private async probeFromPath(): Promise<BlobsFromPath | undefined> {
    if (!this.offThreadAddr.startsWith('grpc+unix:')) return undefined;
    await this.shared.ready;
    const { conn } = this.shared;
    const { PutFromPath } = this.methods;
    const none = Buffer.alloc(0);
    let roots: string[];
    try {
      roots = (await unary(conn, PutFromPath, { digest: none, size: 0, path: none }, 'BlobFromPathService.Put')).roots;
    } catch (err) {
      if (unimplemented(err)) return undefined;
      throw err;
    }
    if (roots.length === 0) return undefined;
    return {
      roots,
      put: async (digest, size, path) => {
        const res = await unary(conn, PutFromPath, { digest, size, path: typeof path === 'string' ? Buffer.from(path) : path }, `BlobFromPathService.Put of ${b3String(digest)}`);
        return Buffer.from(res.digest);
      },
    };
  }

  /** nix-castore's delta uploads, if the server has them: asked once with an empty FindBase. */
  deltas(): Promise<BlobDeltas | undefined> {
    return this.deltaProbe.get();
  }

  private async probeDeltas(): Promise<BlobDeltas | undefined> {
    await this.shared.ready;
    const { conn } = this.shared;
    const { FindBase, PutDelta } = this.methods;
    try {
      await unary(conn, FindBase, { hooks: [] }, 'BlobDeltaService.FindBase');
    } catch (err) {
      if (unimplemented(err)) return undefined;
      throw err;
    }
    return {
      findBase: async (hooks) => {
        const res = await unary(conn, FindBase, { hooks }, `BlobDeltaService.FindBase (${hooks.length} hooks)`);
        return res.base ? { base: res.base, baseSize: res.baseSize, chunks: res.chunks } : undefined;
      },
      putDelta: async (header, ops) => {
        const call = clientStream(conn, PutDelta, `BlobDeltaService.Put of ${b3String(header.digest)}`);
        try {
          await call.write({ kind: 'header', ...header });
          for await (const op of ops) {
            const part: DeltaPart = 'data' in op ? { kind: 'data', data: op.data } : { kind: 'copy', ...op };
            await call.write(part);
          }
          return Buffer.from((await call.finish()).digest);
        } catch (err) {
          call.cancel();
          throw err;
        }
      },
    };
  }

  async stats() {
    // Loaded when asked: it goes through grpc-js, which a copy's upload thread never needs.
    const { fetchStoreStats } = await import('../stats-client.js');
    const s = await fetchStoreStats(this.offThreadAddr);
    return { count: s.blobs, bytes: s.blobBytes };
  }

  async close(): Promise<void> {
    this.shared.release();
  }
}

class GrpcBlobWriter implements BlobWriter {
  constructor(private readonly call: ClientStream<BlobChunk, PutBlobResponse>) {}

  async write(chunk: Uint8Array, released?: () => void): Promise<void> {
    if (chunk.length === 0) return released?.();
    // Released once every piece is: the last callback to come.
    let left = Math.ceil(chunk.length / SEND_CHUNK);
    const one = released && (() => void (--left === 0 && released()));
    for (let off = 0; off < chunk.length; off += SEND_CHUNK) {
      await this.call.write({ data: chunk.subarray(off, off + SEND_CHUNK) }, one);
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
