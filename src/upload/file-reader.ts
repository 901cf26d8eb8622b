// Reading files for ingestion. Files a copy keeps in memory (up to 1 MiB)
// are read synchronously: the open, read and close would each cost a
// thread-pool round trip otherwise, several times what reading them from
// the page cache costs, and the thread reading is the one that hashes
// them next anyway. Larger files stream in chunks, one read always ahead,
// through a few reused buffers.
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { ReadBuffers, readAhead } from '../castore/disk/read-ahead.js';

/** Ingesting hashes each chunk and keeps none (ingest.ts), so its reads reuse memory. */
const ingestReads = new ReadBuffers();

/** All `size` bytes of a small file in `buf` (fewer if it shrank meanwhile). */
export function readWholeSync(path: Buffer, size: number, buf: Buffer = Buffer.allocUnsafe(size)): Buffer {
  if (size === 0) return buf;
  const fd = openSync(path, 'r');
  try {
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

/**
 * Streams `size` bytes of a file in chunks, one read always in flight
 * ahead. A chunk's memory is read into again once the next is asked for.
 */
export async function* readChunks(path: Buffer, size: number): AsyncGenerator<Buffer> {
  const h = await open(path, 'r');
  try {
    yield* readAhead(h, size, ingestReads);
  } finally {
    await h.close();
  }
}
