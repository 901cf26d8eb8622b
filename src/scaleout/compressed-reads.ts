// Ranges of compressed blobs (blob-codec.ts): the frames a range overlaps
// are fetched in one GET, decompressed and checked, and the range cut out.
// A blob compressed whole (a small, packed one) is read whole.
import type { S3Objects } from './s3-objects.js';
import { chunkStarts, sliceChunks } from '../util/chunk-views.js';
import { FRAME_RAW, frameTable, inflateFrames, inflateWhole, storedLength, type Location } from './blob-codec.js';

/** Raw bytes [offset, offset+length) of a compressed blob (in range: the caller checked). */
export async function readCompressedPart(s3: S3Objects, digest: Uint8Array, loc: Location, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array[]> {
  if (loc.codec === 'zstd') {
    const whole = await inflateWhole(digest, loc, await s3.rangeChunks(loc.object, loc.offset, storedLength(loc), signal));
    return sliceChunks(whole, chunkStarts(whole), offset, length);
  }
  const table = frameTable(digest, loc);
  const first = Math.floor(offset / FRAME_RAW);
  const last = Math.floor((offset + length - 1) / FRAME_RAW);
  const start = table[first].start;
  const end = table[last].start + table[last].stored;
  const chunks = await s3.rangeChunks(loc.object, start, end - start, signal);
  const raw = await inflateFrames(digest, loc, first, last - first + 1, chunks);
  return sliceChunks(raw, chunkStarts(raw), offset - first * FRAME_RAW, length);
}

/** A whole compressed blob, streamed: RANGE_FRAMES frames per GET, the next GET under way while one is handed on. */
export async function* readCompressedWhole(s3: S3Objects, digest: Uint8Array, loc: Location, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const step = RANGE_FRAMES * FRAME_RAW;
  const next = (at: number) => readCompressedPart(s3, digest, loc, at, Math.min(step, loc.length - at), signal);
  let pending = next(0);
  pending.catch(() => {});
  for (let at = 0; at < loc.length; at += step) {
    const got = await pending;
    if (at + step < loc.length) {
      pending = next(at + step);
      pending.catch(() => {});
    }
    yield* got;
  }
}

const RANGE_FRAMES = 8;
