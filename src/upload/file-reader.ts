// Reading files for ingestion. Files a copy keeps in memory (up to 1 MiB)
// are read synchronously: the open, read and close would each cost a
// thread-pool round trip otherwise, several times what reading them from
// the page cache costs, and the thread reading is the one that hashes
// them next anyway. Larger files stream in chunks, one read always ahead.
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { readAhead } from '../castore/disk/read-ahead.js';

/** All `size` bytes of a small file in one buffer (fewer if it shrank meanwhile). */
export function readWholeSync(path: Buffer, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
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

/** Streams `size` bytes of a file in chunks, one read always in flight ahead. */
export async function* readChunks(path: Buffer, size: number): AsyncGenerator<Buffer> {
  const h = await open(path, 'r');
  try {
    yield* readAhead(h, size);
  } finally {
    await h.close();
  }
}
