// A large Blob Put costs the daemon a few promises per event-loop turn,
// not several per DATA frame: Node's client sends 16 KiB frames, ~65,000
// per GiB, and an async generator, an async write and its wrappers per
// frame were a large part of the daemon's garbage and CPU. Client and
// daemon run in this process, on a real on-disk store over a unix
// socket; async_hooks sees every promise created (a bound, not a time).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GrpcBlobService } from '../../src/grpc/backends/grpc-blob-service.js';
import { Blake3Stream } from '../../src/castore/digest.js';
import { startDaemon } from '../../src/server/daemon.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { leanCallWakes } from '../../src/server/lean-call.js';
import { promisesDuring } from '../helpers/promises.js';

const MiB = 1 << 20;
const SIZE_MIB = 64;

describe('Blob Put: promises per frame', () => {
  it(`a ${SIZE_MIB} MiB Put makes a few promises per wake-up of its writer, none per DATA frame (client included)`, async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'blob-put-promises-'));
    const store = openStore(sameAddr(fileAddr(join(tmp, 'store'))));
    const daemon = await startDaemon(store, { listen: [{ kind: 'unix', path: join(tmp, 'sock') }] });
    const blobs = new GrpcBlobService(daemon.addrs[0]);
    try {
      // Warm: the connection, the store's directories and its slabs.
      const warm = blobs.put();
      await warm.write(Buffer.alloc(2 * MiB, 7));
      await warm.close();

      const h = new Blake3Stream();
      // Fresh buffers: the client may still be sending one after its write resolved.
      const chunks = Array.from({ length: SIZE_MIB }, (_, i) => {
        const c = Buffer.alloc(MiB, i + 1);
        c.writeUInt32LE((i * 2654435761) >>> 0, 8);
        h.update(c);
        return c;
      });
      const w = blobs.put();
      const wakesBefore = leanCallWakes();
      const promises = await promisesDuring(async () => {
        for (const c of chunks) await w.write(c);
        assert.deepEqual(await w.close(), h.digest());
      });
      const wakes = leanCallWakes() - wakesBefore;
      const frames = (SIZE_MIB * MiB) / (16 << 10);
      // A few per wake-up (the wait, its result, the await; wake-ups come
      // once per event-loop turn, however many frames arrived in it) and per
      // MiB slab written; none per frame. The old path made ~17 per frame.
      assert.ok(promises < frames / 2 + 4 * wakes, `${promises} promises for ${frames} DATA frames of 16 KiB and ${wakes} wake-ups`);
      assert.equal(await store.blobs.sizeOf?.(h.digest()), SIZE_MIB * MiB);
    } finally {
      await blobs.close();
      await daemon.stop();
      await store.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
