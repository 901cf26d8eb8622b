// BlobService.Read served straight on the node:http2 stream (lean-blob.ts
// routes it). grpc-js serializes every BlobChunk into a fresh buffer: a
// copy of each MiB, and on this kind of VM about 60,000 page faults and
// 1.6 CPU s of the daemon per GiB read. Here each chunk goes out as a
// 7-byte prefix followed by the store's own buffer, which goes back to
// the store once written, so a Read of any size cycles through a few MiB.
import { status } from '@grpc/grpc-js';
import type { BlobService, LentRead } from '../castore/blob-service.js';
import { b3String } from '../castore/digest.js';
import type { StatusObject } from '../grpc/status.js';
import { dropRead, sendLent } from './blob-read.js';
import { statusOf, type LeanCall } from './lean-call.js';

/** The gRPC frame header and BlobChunk field header of a chunk carrying `length` bytes of data. */
export function blobChunkPrefix(length: number): Buffer {
  let varint = 1;
  for (let v = length; v >= 0x80; v = Math.floor(v / 128)) varint++;
  const head = Buffer.allocUnsafe(6 + varint);
  head[0] = 0; // not compressed
  head.writeUInt32BE(1 + varint + length, 1);
  head[5] = 0x0a; // field 1 (data), length-delimited
  let at = 6;
  let v = length;
  for (; v >= 0x80; v = Math.floor(v / 128)) head[at++] = (v & 0x7f) | 0x80;
  head[at] = v;
  return head;
}

/** A store without lent buffers: its chunks, none given back. */
async function plainRead(blobs: BlobService, digest: Uint8Array): Promise<LentRead | undefined> {
  const chunks = await blobs.read(digest);
  return chunks && { chunks, giveBack: () => {} };
}

/** Streams the blob `digest` to the call, or answers NOT_FOUND; ends the call either way. */
export async function serveBlobRead(call: LeanCall, blobs: BlobService, digest: Uint8Array): Promise<void> {
  let lent: LentRead | undefined;
  try {
    lent = blobs.readLent ? await blobs.readLent(digest) : await plainRead(blobs, digest);
  } catch (err) {
    return call.finish(statusOf(err));
  }
  if (!lent) return call.finish({ code: status.NOT_FOUND, details: `blob ${b3String(digest)} not found` });
  if (!call.startStream()) return dropRead(lent).catch(() => {}); // the client is gone: nobody to tell
  let result: StatusObject = { code: status.OK, details: '' };
  try {
    await sendLent(lent, {
      send: (data, written) => call.send(blobChunkPrefix(data.length), data, written),
      get gone() {
        return call.gone;
      },
      closed: call.closed,
    });
  } catch (err) {
    result = statusOf(err);
  }
  call.end(result);
}
