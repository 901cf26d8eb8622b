// The hashing thread (hash-thread.ts): SHA-256s of the NARs the main
// thread writes into the shared ring, one per stream, each posted back
// when its stream ends. Large files it reads itself where the stream
// names them, feeding the NAR hash and the file's BLAKE3 from one read.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { Blake3Stream } from '../castore/digest.js';
import { READ_CHUNK } from '../castore/disk/read-ahead.js';
import { END, consumeRing } from './hash-ring.js';
import { fileChanged } from './nar-digest.js';
import type { HashReply, HashWorkerData } from './hash-thread.js';

const port = parentPort!;
const data = workerData as HashWorkerData;
/** Per stream: its hash, bytes, and the first file that could not be read (its NAR hash is then wrong). */
const streams = new Map<number, { hash: Hash; bytes: number; error?: string }>();
let total = 0;

/** The failure tests ask for (failAfterBytes): the thread dies of it. */
class AskedToFail extends Error {}
const buf = Buffer.allocUnsafe(READ_CHUNK);

function stream(id: number): { hash: Hash; bytes: number; error?: string } {
  let s = streams.get(id);
  if (!s) streams.set(id, (s = { hash: createHash('sha256'), bytes: 0 }));
  return s;
}

function counted(n: number): void {
  total += n;
  if (data.failAfterBytes !== undefined && total >= data.failAfterBytes) throw new AskedToFail(`failing after ${total} bytes, as asked (failAfterBytes)`);
}

/** Reads `size` bytes of the file into the stream's hash; its BLAKE3 digest. */
function readFile(s: { hash: Hash; bytes: number }, path: Buffer, size: number): Buffer {
  const b3 = new Blake3Stream();
  const fd = openSync(path, 'r');
  try {
    let got = 0;
    while (got < size) {
      // In order from a fresh descriptor (no offsets: a FIFO, which tests use to hold the thread, cannot seek).
      const n = readSync(fd, buf, 0, Math.min(buf.length, size - got), null);
      if (n === 0) break;
      const chunk = buf.subarray(0, n);
      b3.update(chunk);
      s.hash.update(chunk);
      s.bytes += n;
      got += n;
      counted(n);
    }
    if (got !== size) throw new Error(fileChanged(size, got));
  } finally {
    closeSync(fd);
  }
  return b3.digest();
}

consumeRing(data.ring, {
  data(id, bytes) {
    const s = stream(id);
    s.hash.update(bytes);
    s.bytes += bytes.length;
    counted(bytes.length);
  },
  file(id, seq, size, path) {
    const s = stream(id);
    if (s.error !== undefined) return port.postMessage({ type: 'file', stream: id, seq, error: s.error } satisfies HashReply);
    try {
      const digest = readFile(s, path, size);
      port.postMessage({ type: 'file', stream: id, seq, digest } satisfies HashReply);
    } catch (err) {
      if (err instanceof AskedToFail) throw err;
      s.error = `${path.toString()}: ${(err as Error).message}`;
      port.postMessage({ type: 'file', stream: id, seq, error: s.error } satisfies HashReply);
    }
  },
  control(id, code) {
    const s = stream(id);
    streams.delete(id);
    if (code !== END) return; // ABORT
    if (s.error !== undefined) return port.postMessage({ type: 'digest', stream: id, error: s.error, bytes: s.bytes } satisfies HashReply);
    port.postMessage({ type: 'digest', stream: id, digest: s.hash.digest(), bytes: s.bytes } satisfies HashReply);
  },
  room() {
    port.postMessage({ type: 'room' } satisfies HashReply);
  },
});
