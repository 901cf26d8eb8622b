// The hashing thread (hash-thread.ts): SHA-256s of the NARs the main
// thread writes into the shared ring, one per stream, each posted back
// when its stream ends.
import { createHash, type Hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { END, consumeRing } from './hash-ring.js';
import type { HashReply, HashWorkerData } from './hash-thread.js';

const port = parentPort!;
const data = workerData as HashWorkerData;
const streams = new Map<number, { hash: Hash; bytes: number }>();
let total = 0;

consumeRing(data.ring, {
  data(stream, bytes) {
    let s = streams.get(stream);
    if (!s) streams.set(stream, (s = { hash: createHash('sha256'), bytes: 0 }));
    s.hash.update(bytes);
    s.bytes += bytes.length;
    total += bytes.length;
    if (data.failAfterBytes !== undefined && total >= data.failAfterBytes) throw new Error(`failing after ${total} bytes, as asked (failAfterBytes)`);
  },
  control(stream, code) {
    const s = streams.get(stream);
    streams.delete(stream);
    if (code !== END) return; // ABORT
    port.postMessage({ type: 'digest', stream, digest: s ? s.hash.digest() : createHash('sha256').digest(), bytes: s?.bytes ?? 0 } satisfies HashReply);
  },
  room() {
    port.postMessage({ type: 'room' } satisfies HashReply);
  },
});
