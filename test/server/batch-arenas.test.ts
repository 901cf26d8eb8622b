// A daemon copies each batch Put's request into reused memory
// (receive-arenas.ts) rather than keeping views of its network reads. The
// memory is reused only after a Put succeeded: clients racing with the
// same blobs, and Puts refused half-way, must still leave exactly the
// bytes they sent. Real daemon process, real sockets, fsck of its store.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ReceiveArenas, ARENA_BYTES } from '../../src/server/receive-arenas.js';
import { GrpcBlobService } from '../../src/grpc/backends/grpc-blob-service.js';
import { blake3 } from '../../src/castore/digest.js';
import { readAll } from '../../src/castore/blob-service.js';
import { startDaemonProcess, CLI } from '../helpers/daemon.js';

describe('ReceiveArenas', () => {
  it('reuses a few arenas; past them a message gets memory of its own size, so small calls cannot hold 4 MiB each', () => {
    const arenas = new ReceiveArenas(2);
    const a = arenas.take(100);
    const b = arenas.take(3 << 20);
    assert.equal(a.length, ARENA_BYTES);
    assert.equal(b.length, ARENA_BYTES);
    const c = arenas.take(100);
    assert.equal(c.length, 100, 'no third arena');
    assert.equal(arenas.take(ARENA_BYTES + 1).length, ARENA_BYTES + 1);
    arenas.give(c); // not an arena: left to the collector
    assert.equal(arenas.idle, 0);
    arenas.give(a);
    assert.equal(arenas.take(5000), a, 'a given-back arena is reused');
  });
});

/** Blob `i` of `size` bytes, the same every time it is asked for. */
function blob(i: number, size: number): Buffer {
  const b = Buffer.alloc(size, i & 0xff);
  for (let off = 0; off + 4 <= size; off += 4096) b.writeUInt32LE((i * 2654435761 + off) >>> 0, off);
  return b;
}

it('batch Puts racing with the same blobs, and Puts refused half-way, store exactly the bytes sent', async () => {
  const d = await startDaemonProcess();
  const clients = [0, 1, 2, 3].map(() => new GrpcBlobService(d.addr));
  try {
    const sizes = [100, 5000, 70_000, 300_000, 900_000];
    const all = Array.from({ length: 120 }, (_, i) => blob(i, sizes[i % sizes.length]));
    // Each client puts every blob, in its own order and batch sizes, a refused batch between its batches.
    await Promise.all(
      clients.map(async (c, k) => {
        const batches = (await c.batches())!;
        const order = all.map((_, i) => (i * (2 * k + 1) + k) % all.length);
        for (let at = 0; at < order.length; ) {
          const batch = [];
          let bytes = 0;
          const limit = Math.min((k + 1) << 20, batches.maxPutBytes);
          while (at < order.length && bytes + all[order[at]].length + 64 <= limit) {
            const data = all[order[at++]];
            batch.push({ digest: blake3(data), data });
            bytes += data.length;
          }
          await batches.put(batch);
          // The same blobs with one digest wrong: all refused, nothing of it stored.
          const bad = batch.map((b) => ({ digest: b.digest, data: Buffer.from(b.data) }));
          bad[bad.length - 1].data[0] ^= 1;
          await assert.rejects(batches.put(bad), /hash to|INVALID_ARGUMENT|invalid/i);
        }
      }),
    );
    const reader = new GrpcBlobService(d.addr);
    for (const [i, data] of all.entries()) assert.ok((await readAll(reader, blake3(data)))?.equals(data), `blob ${i}`);
    const changed = Buffer.from(all[3]);
    changed[0] ^= 1;
    assert.equal(await reader.stat(blake3(changed)), undefined, 'a refused blob is not stored');
    await reader.close();
  } finally {
    for (const c of clients) await c.close();
    await d.stop();
  }
});

it('fsck finds the store of racing batch Puts clean', async () => {
  const d = await startDaemonProcess();
  const clients = [0, 1].map(() => new GrpcBlobService(d.addr));
  try {
    const all = Array.from({ length: 60 }, (_, i) => blob(1000 + i, 20_000 + i * 9000));
    const blobs = all.map((data) => ({ digest: blake3(data), data }));
    await Promise.all(
      clients.map(async (c, k) => {
        const batches = (await c.batches())!;
        const order = k === 0 ? blobs : [...blobs].reverse();
        for (let i = 0; i < order.length; i += 5) await batches.put(order.slice(i, i + 5));
      }),
    );
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'fsck', '--data', d.dataDir, '--json'], { timeout: 60_000 });
    const report = JSON.parse(stdout);
    assert.equal(report.ok, true, stdout);
    assert.equal(report.counts.blobs, 60, stdout);
  } finally {
    for (const c of clients) await c.close();
    await d.stop();
  }
});
