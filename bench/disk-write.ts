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

/** Seconds to write `bytes` (rounded up to 4 KiB) to a new file in `dir` and fsync it. */
export function diskWriteSeconds(dir: string, bytes: number, direct: boolean): number {
  piece ??= alignedPiece();
  const file = join(dir, `disk-write-${process.pid}-${direct ? 'direct' : 'cached'}`);
  const total = Math.ceil(bytes / 4096) * 4096;
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | (direct ? constants.O_DIRECT : 0);
  const t0 = process.hrtime.bigint();
  const fd = openSync(file, flags, 0o644);
  try {
    for (let off = 0, n = 0; off < total; off += PIECE, n++) {
      piece.writeUInt32LE(n, 0); // every piece differs
      const len = Math.min(PIECE, total - off);
      for (let done = 0; done < len; ) done += writeSync(fd, piece, done, len - done, off + done);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  unlinkSync(file);
  return s;
}

/** Both ways; O_DIRECT may be refused (tmpfs): then only the cached figure. */
export function diskWrite(dir: string, bytes: number): { cached: number; direct: number; best: number } {
  const cached = diskWriteSeconds(dir, bytes, false);
  let direct = Infinity;
  try {
    direct = diskWriteSeconds(dir, bytes, true);
  } catch {
    // the filesystem refuses O_DIRECT
  }
  return { cached, direct, best: Math.min(cached, direct) };
}
