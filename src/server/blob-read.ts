// BlobService.Read on grpc-js, and the lent-buffer loop both transports
// share (lean-read.ts is the node:http2 one). Where the store lends its
// read buffers (BlobService.readLent), each chunk goes back to it once the
// transport has written it, and at most LENT_OUT chunks are out at once,
// so the store's few buffers are read into again and again instead of a
// fresh 1 MiB per chunk: that, and its page faults, cost a daemon's Read
// of 1 GiB about as much CPU again as the rest of the Read.
import { once } from 'node:events';
import type { ServerWritableStream } from '@grpc/grpc-js';
import type { BlobService, LentRead } from '../castore/blob-service.js';
import type * as C from '../castore/messages.js';

/** Largest BlobChunk we send. */
export const SEND_CHUNK = 1 << 20;
/** Lent chunks not yet given back, at most: ahead of the client by this many MiB. */
export const LENT_OUT = 6;

/** Where a Read's chunks go: one transport's call. */
export interface ChunkSink {
  /** Sends one BlobChunk's data; `written` once the transport let go of it (never if the call ends first). Resolves when more may be sent. */
  send(data: Uint8Array, written?: () => void): Promise<void> | undefined;
  /** Whether the client went away. */
  readonly gone: boolean;
  /** Settles once the client goes away (written callbacks stop coming then). */
  readonly closed: Promise<unknown>;
}

/**
 * Sends the lent chunks in BlobChunks of at most SEND_CHUNK bytes, each
 * chunk given back once its last piece is written; throws once the client
 * is gone (chunks out then are never given back: the transport may still
 * hold them, so they are left to the collector).
 */
export async function sendLent(lent: LentRead, sink: ChunkSink): Promise<void> {
  let out = 0;
  let wake: (() => void) | undefined;
  for await (const chunk of lent.chunks) {
    out++;
    const back = (): void => {
      out--;
      lent.giveBack(chunk);
      const w = wake;
      wake = undefined;
      w?.();
    };
    if (chunk.length === 0) back();
    for (let off = 0; off < chunk.length; off += SEND_CHUNK) {
      const last = off + SEND_CHUNK >= chunk.length;
      await sink.send(chunk.subarray(off, off + SEND_CHUNK), last ? back : undefined);
    }
    while (out >= LENT_OUT && !sink.gone) await Promise.race([new Promise<void>((r) => (wake = r)), sink.closed]);
    if (sink.gone) throw new Error('call cancelled by the client');
  }
}

/**
 * Lets go of a read that will not be sent: a generator's cleanup (closing
 * its file) runs only once it has started, so it is started, and its first
 * chunk given back.
 */
export async function dropRead(lent: LentRead): Promise<void> {
  const it = lent.chunks[Symbol.asyncIterator]();
  try {
    const first = await it.next();
    if (!first.done) lent.giveBack(first.value);
  } finally {
    await it.return?.(undefined);
  }
}

type Call = ServerWritableStream<unknown, C.BlobChunk>;

function grpcSink(call: Call): ChunkSink {
  let closed: Promise<unknown> | undefined;
  return {
    async send(data, written) {
      if (call.cancelled) throw new Error('call cancelled by the client');
      if (!call.write({ data }, written)) await Promise.race([once(call, 'drain'), once(call, 'cancelled')]);
    },
    get gone() {
      return call.cancelled;
    },
    // Made when first waited on: most Reads never wait for their buffers.
    get closed() {
      return (closed ??= call.cancelled ? Promise.resolve() : once(call, 'cancelled'));
    },
  };
}

/** Sends the blob's bytes as BlobChunks; false if the store does not have it. */
export async function sendBlob(blobs: BlobService, digest: Uint8Array, call: Call): Promise<boolean> {
  const sink = grpcSink(call);
  if (!blobs.readLent) {
    const stream = await blobs.read(digest);
    if (!stream) return false;
    for await (const chunk of stream) {
      for (let off = 0; off < chunk.length; off += SEND_CHUNK) await sink.send(chunk.subarray(off, off + SEND_CHUNK));
    }
    return true;
  }
  const lent = await blobs.readLent(digest);
  if (!lent) return false;
  await sendLent(lent, sink);
  return true;
}
