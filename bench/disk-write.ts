// The disk's own speed for durable writes: `bytes` written to one new file
// and fsynced, once through the page cache (like `dd conv=fsync`) and once
// with O_DIRECT from page-aligned memory (like the daemon's large blobs);
// the faster of the two is what a durable store can reach at best.
import { closeSync, constants, fsyncSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { MiB } from './util.js';

const PIECE = 4 * MiB;

/** 4 MiB of incompressible-looking bytes in page-aligned memory (a WebAssembly memory is). */
function alignedPiece(): Buffer {
  const mem = new WebAssembly.Memory({ initial: PIECE / 65536, maximum: PIECE / 65536 });
  const buf = Buffer.from(mem.buffer);
  let x = 0x2545f491;
  for (let i = 0; i < buf.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, i);
  }
  return buf;
}

let piece: Buffer | undefined;

/**
 * Seconds to write `bytes` (rounded up to 4 KiB) to a new file in `dir` and
 * fsync it, and of those the fsync alone: on a disk with a volatile cache
 * (a VM's) the flush is a large share, and a store cannot start it before
 * the last byte has arrived.
 */
export function diskWriteTimed(dir: string, bytes: number, direct: boolean): { seconds: number; flush: number } {
  piece ??= alignedPiece();
  const file = join(dir, `disk-write-${process.pid}-${direct ? 'direct' : 'cached'}`);
  const total = Math.ceil(bytes / 4096) * 4096;
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | (direct ? constants.O_DIRECT : 0);
  const t0 = process.hrtime.bigint();
  let t1 = t0;
  const fd = openSync(file, flags, 0o644);
  try {
    for (let off = 0, n = 0; off < total; off += PIECE, n++) {
      piece.writeUInt32LE(n, 0); // every piece differs
      const len = Math.min(PIECE, total - off);
      for (let done = 0; done < len; ) done += writeSync(fd, piece, done, len - done, off + done);
    }
    t1 = process.hrtime.bigint();
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const t2 = process.hrtime.bigint();
  unlinkSync(file);
  return { seconds: Number(t2 - t0) / 1e9, flush: Number(t2 - t1) / 1e9 };
}

/** Seconds to write `bytes` to a new file in `dir` and fsync it (diskWriteTimed). */
export function diskWriteSeconds(dir: string, bytes: number, direct: boolean): number {
  return diskWriteTimed(dir, bytes, direct).seconds;
}
