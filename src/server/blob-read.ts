// BlobService.Read on grpc-js. Where the store lends its read buffers
// (BlobService.readLent), each chunk goes back to it once grpc-js has
// written it (grpc-js serializes a copy), and at most LENT_OUT chunks are
// out at once, so the store's few buffers are read into again and again
// instead of a fresh 1 MiB per chunk: that, and its page faults, cost a
// daemon's Read of 1 GiB about as much CPU again as the rest of the Read.
import { once } from 'node:events';
import type { ServerWritableStream } from '@grpc/grpc-js';
import type { BlobService } from '../castore/blob-service.js';
import type * as C from '../castore/messages.js';

/** Largest BlobChunk we send. */
export const SEND_CHUNK = 1 << 20;
/** Lent chunks not yet given back, at most: ahead of the client by this many MiB. */
export const LENT_OUT = 6;

type Call = ServerWritableStream<unknown, C.BlobChunk>;

/** `written`: called once grpc-js has written the message (never if the call ends first). */
async function send(call: Call, msg: C.BlobChunk, written?: () => void): Promise<void> {
  if (call.cancelled) throw new Error('call cancelled by the client');
  if (!call.write(msg, written)) await Promise.race([once(call, 'drain'), once(call, 'cancelled')]);
}

/** Sends the blob's bytes as BlobChunks; false if the store does not have it. */
export async function sendBlob(blobs: BlobService, digest: Uint8Array, call: Call): Promise<boolean> {
  if (!blobs.readLent) {
    const stream = await blobs.read(digest);
    if (!stream) return false;
    for await (const chunk of stream) {
      for (let off = 0; off < chunk.length; off += SEND_CHUNK) await send(call, { data: chunk.subarray(off, off + SEND_CHUNK) });
    }
    return true;
  }
  const lent = await blobs.readLent(digest);
  if (!lent) return false;
  let out = 0;
  let wake: (() => void) | undefined;
  const woken = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  call.on('cancelled', woken); // written callbacks stop coming
  try {
    for await (const chunk of lent.chunks) {
      out++;
      for (let off = 0; off < chunk.length; off += SEND_CHUNK) {
        const last = off + SEND_CHUNK >= chunk.length;
        const back = (): void => {
          out--;
          lent.giveBack(chunk);
          woken();
        };
        await send(call, { data: chunk.subarray(off, off + SEND_CHUNK) }, last ? back : undefined);
      }
      while (out >= LENT_OUT && !call.cancelled) await new Promise<void>((r) => (wake = r));
      if (call.cancelled) throw new Error('call cancelled by the client');
    }
  } finally {
    call.off('cancelled', woken);
  }
  return true;
}
