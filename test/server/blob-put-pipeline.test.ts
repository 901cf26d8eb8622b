// A large Blob Put keeps both ends busy: the client queues its next
// message while one is on the socket, and the daemon wakes the blob's
// writer once per turn of its event loop, not per DATA frame (Node's
// client sends 16 KiB ones). Against a real daemon on a unix socket and a
// real on-disk store; the bytes stored are checked.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GrpcBlobService } from '../../src/grpc/backends/grpc-blob-service.js';
import { SEND_AHEAD } from '../../src/grpc/h2/calls.js';
import { Blake3Stream } from '../../src/castore/digest.js';
import { startDaemon } from '../../src/server/daemon.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { leanCallWakes } from '../../src/server/lean-call.js';
import { startDaemonProcess } from '../helpers/daemon.js';

const MiB = 1 << 20;

/** `n` MiB, each different, and their digest. */
function blob(n: number): { chunks: Buffer[]; digest: Buffer } {
  const h = new Blake3Stream();
  const chunks = Array.from({ length: n }, (_, i) => {
    const b = Buffer.alloc(MiB, i + 1);
    b.writeUInt32LE((i * 2654435761) >>> 0, 8);
    h.update(b);
    return b;
  });
  return { chunks, digest: h.digest() };
}

describe('Blob Put pipeline', () => {
  it('the client queues the next MiB while one is being sent, and never more than SEND_AHEAD', async () => {
    const daemon = await startDaemonProcess();
    const blobs = new GrpcBlobService(daemon.addr);
    try {
      const { chunks, digest } = blob(24);
      const w = blobs.put();
      let unreleased = 0;
      let most = 0;
      for (const c of chunks) {
        unreleased++;
        const written = w.write(c, () => unreleased--);
        // Handed to the stream and not yet sent: the MiB being sent and those queued behind it.
        most = Math.max(most, unreleased);
        await written;
      }
      assert.deepEqual(await w.close(), digest);
      assert.ok(most >= 2, `at most ${most} MiB handed over and unsent: the client waited for each to be sent before queuing the next`);
      assert.ok(most * MiB <= SEND_AHEAD + MiB, `${most} MiB waited unsent: more than SEND_AHEAD`);
      const read = blobs.read(digest);
      let n = 0;
      for await (const c of (await read)!) n += c.length;
      assert.equal(n, 24 * MiB);
    } finally {
      await blobs.close();
      await daemon.stop();
    }
  });

  it('the daemon wakes the writer far less often than DATA frames arrive', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'blob-put-pipeline-'));
    const store = openStore(sameAddr(fileAddr(join(tmp, 'store'))));
    const daemon = await startDaemon(store, { listen: [{ kind: 'unix', path: join(tmp, 'sock') }] });
    const blobs = new GrpcBlobService(daemon.addrs[0]);
    try {
      const { chunks, digest } = blob(48);
      const before = leanCallWakes();
      const w = blobs.put();
      for (const c of chunks) await w.write(c);
      assert.deepEqual(await w.close(), digest);
      const wakes = leanCallWakes() - before;
      const frames = (48 * MiB) / (16 << 10);
      // Woken per DATA frame, it was ~1 per frame; per event-loop turn, a few per socket read of 64 KiB or more.
      assert.ok(wakes * 3 < frames, `${wakes} wake-ups for ${frames} DATA frames of 16 KiB`);
      assert.equal(await store.blobs.sizeOf?.(digest), 48 * MiB);
    } finally {
      await blobs.close();
      await daemon.stop();
      await store.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
