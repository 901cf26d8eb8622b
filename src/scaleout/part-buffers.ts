// The part-sized buffers of large-blob uploads (part-upload.ts), shared by
// every upload of the process, and the one bound on them.
//
// An upload fills one buffer of its own, then waits for one of
// PARTS_SENDING process-wide sending slots before it sends that buffer and
// takes the next. So buffers in use never exceed the uploads filling (the
// callers bound those: LARGE_UPLOADS per store) + PARTS_SENDING. It cannot
// deadlock: a writer waits only for a slot, and a slot's holder is an S3
// request already sent, which settles without anything a waiter holds
// (not the waiter's buffer, large-upload slot, or the chunk it is writing).
// Each upload once had 2 parts sending + 1 filling (12 buffers for 4
// uploads, 96 MiB), which with packs set a copy's peak RSS.
//
// A stored part's buffer is kept for the next part while uploads keep
// coming (fresh 8 MiB buffers, as external memory, drew full garbage
// collections) and dropped after SPARE_KEEP_MS without a taker: freeing it
// at every pause made glibc raise its mmap threshold and serve the next
// buffers from its heap, where freed memory stays resident.
import { Limiter } from '../util/limiter.js';
import { PART_SIZE } from './s3-objects.js';
import { mappedBuffer } from '../util/mapped-buffer.js';

/** Parts being sent (UploadPart or a one-part PUT's body) at once, by all uploads together. */
export const PARTS_SENDING = 2;
/** A spare buffer goes after this long unused (a daemon between copies gives its memory back). */
const SPARE_KEEP_MS = 1_000;

let sending = new Limiter(PARTS_SENDING);
const spares: Buffer[] = [];
let dropTimer: NodeJS.Timeout | undefined;
/** Buffers handed out and not yet given back or dropped, and the most at once (tests). */
let out = 0;
let peak = 0;

/** A buffer for one part: the caller's until it gives it back. */
export function takePart(): Buffer {
  const buf = spares.pop() ?? mappedBuffer(PART_SIZE);
  out++;
  if (out + spares.length > peak) peak = out + spares.length;
  return buf;
}

/** `reuse`: the buffer's bytes were stored (a failed request's body may still be in the SDK's hands). */
export function givePart(buf: Buffer, reuse: boolean): void {
  out--;
  // A spare is taken before a buffer is made: all buffers never outnumber the most in use at once.
  if (reuse && spares.length < PARTS_SENDING + 1) spares.push(buf);
  if (out === 0 && spares.length) {
    clearTimeout(dropTimer);
    dropTimer = setTimeout(() => {
      if (out === 0) spares.length = 0;
    }, SPARE_KEEP_MS);
    dropTimer.unref();
  }
}

/** Resolves with a sending slot once one is free; the caller calls the function it gets once its part's request settled and its buffer is given back. */
export function sendingSlot(): Promise<() => void> {
  const from = sending;
  return new Promise((got) => {
    void from.run(() => new Promise<void>((release) => got(release)));
  });
}

/** For tests: buffers in use and kept, the most there were at once (reset by limitSending). */
export function partBuffers(): { out: number; spare: number; peak: number } {
  return { out, spare: spares.length, peak };
}

/** For tests: fewer sending slots (1 proves a single slot cannot deadlock many uploads); resets the peak. */
export function limitSending(n = PARTS_SENDING): void {
  sending = new Limiter(n);
  peak = out + spares.length;
}
