// Reading files for ingestion without stalling on I/O latency: buffers are
// sized to what is left to read (a 2 KiB file costs 2 KiB, not 1 MiB), the
// next chunk is requested before the current one is handed on, and small
// files can be fetched ahead of time while earlier ones are being hashed.
// Files of at most SYNC_READ_MAX bytes are read synchronously: the open,
// read and close each cost a thread-pool round trip otherwise, several
// times what reading a few KiB from the page cache costs.
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { readAhead } from '../castore/disk/read-ahead.js';

export const SYNC_READ_MAX = 64 << 10;

/** All `size` bytes of a small file in one buffer. */
export async function readWhole(path: Buffer, size: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  if (size === 0) return buf;
  if (size <= SYNC_READ_MAX) return readWholeSync(path, buf);
  const h = await open(path, 'r');
  try {
    let off = 0;
    while (off < size) {
      const { bytesRead } = await h.read(buf, off, size - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return buf.subarray(0, off);
  } finally {
    await h.close();
  }
}

function readWholeSync(path: Buffer, buf: Buffer): Buffer {
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

/**
 * Starts reading small files ahead, in order, keeping at most `maxBytes`
 * fetched but not yet taken.
 */
export class ReadAhead {
  private readonly started = new Map<number, Promise<Buffer>>();
  private next = 0;
  private inFlight = 0;

  constructor(
    private readonly files: ({ path: Buffer; size: number } | undefined)[],
    private readonly maxBytes: number,
  ) {}

  /** The contents of file `i` (which must be a small one), fetching ahead as budget allows. */
  take(i: number): Promise<Buffer> {
    this.fill(i);
    let p = this.started.get(i);
    if (p) {
      this.started.delete(i);
      this.inFlight -= this.files[i]!.size;
    } else {
      const f = this.files[i]!;
      p = readWhole(f.path, f.size);
    }
    this.fill(i + 1);
    return p;
  }

  private fill(from: number): void {
    if (this.next < from) this.next = from;
    while (this.next < this.files.length) {
      const f = this.files[this.next];
      // Synchronous reads gain nothing from being started early.
      if (f && f.size > SYNC_READ_MAX) {
        if (this.inFlight + f.size > this.maxBytes && this.inFlight > 0) return;
        const p = readWhole(f.path, f.size);
        p.catch(() => {}); // surfaced by take()
        this.started.set(this.next, p);
        this.inFlight += f.size;
      }
      this.next++;
    }
  }
}
