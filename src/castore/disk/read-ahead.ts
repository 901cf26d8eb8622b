// Reads a file handle in chunks with the next read already in flight while
// the caller consumes the current chunk, so disk latency overlaps with
// hashing or sending. Buffers are sized to what is left (no 1 MiB buffer
// for a 2 KiB file).
import type { FileHandle } from 'node:fs/promises';

export const READ_CHUNK = 1 << 20;

/**
 * READ_CHUNK buffers kept for reuse, for readers whose consumer is done
 * with each chunk when it asks for the next: a copy then reads gigabytes
 * through a few megabytes instead of allocating them all (V8 answers
 * every ~64 MiB of new buffers with a full garbage collection).
 */
const counts = { allocated: 0 };
/** Buffers readAhead() and ReadBuffers allocated so far (for tests). */
export function readBuffersAllocated(): number {
  return counts.allocated;
}

export class ReadBuffers {
  private readonly free: Buffer[] = [];
  constructor(private readonly keep = 16) {}
  take(): Buffer {
    const reused = this.free.pop();
    if (reused) return reused;
    counts.allocated++;
    return Buffer.allocUnsafeSlow(READ_CHUNK);
  }
  /** Takes back a buffer from take(), or any view of one. */
  give(b: Uint8Array): void {
    if (this.free.length < this.keep && b.buffer.byteLength === READ_CHUNK) this.free.push(Buffer.from(b.buffer, 0, READ_CHUNK));
  }
}

/**
 * Yields `size` bytes (or up to EOF when size is undefined) from `h`; does
 * not close it. With `reuse`, a chunk's memory is read into again once the
 * next chunk is asked for: the caller must keep nothing. With `lend` too,
 * each chunk is the caller's, to give back to `reuse` when done with it.
 */
export async function* readAhead(h: FileHandle, size?: number, reuse?: ReadBuffers, lend = false): AsyncGenerator<Buffer> {
  let pos = 0;
  let eof = false;
  /** The whole buffers behind the chunk being consumed and the read in flight. */
  let current: Buffer | undefined;
  let reading: Buffer | undefined;
  const next = (): Promise<Buffer> | undefined => {
    if (eof || (size !== undefined && pos >= size)) return undefined;
    const len = size === undefined ? READ_CHUNK : Math.min(READ_CHUNK, size - pos);
    const at = pos;
    pos += len;
    if (!reuse) counts.allocated++;
    const buf = reuse ? (reading = reuse.take()) : Buffer.allocUnsafe(len);
    return h.read(buf, 0, len, at).then(({ bytesRead }) => {
      if (bytesRead < len) eof = true;
      return buf.subarray(0, bytesRead);
    });
  };
  let pending = next();
  try {
    while (pending) {
      const chunk = await pending;
      if (reuse) {
        if (current && !lend) reuse.give(current); // the consumer asked for more: it is done with it
        current = reading;
      }
      pending = next();
      if (chunk.length === 0) break;
      yield chunk;
    }
  } finally {
    await pending?.catch(() => {}); // never close the handle under an outstanding read
    if (reuse) {
      if (current && !lend) reuse.give(current);
      if (reading && reading !== current) reuse.give(reading); // read but never yielded
    }
  }
}
