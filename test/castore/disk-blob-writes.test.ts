// A large blob's own file is written with few system calls whatever the
// chunk sizes it arrives in (a daemon passes on network reads of 16 KiB),
// and completely even when the kernel takes a write only in part; batch
// Has answers for such files from one listing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskBlobService, PACK_BLOB_MAX } from '../../src/castore/disk/disk-blob-service.js';
import { DiskLayout } from '../../src/castore/disk/disk-layout.js';
import { b3Hex, blake3 } from '../../src/castore/digest.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';

function patterned(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i + 4 <= n; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return b;
}

describe('disk blob writes', () => {
  let root: string;
  // FileHandle's class is not exported; one handle gives its prototype.
  let proto: { write: (...a: unknown[]) => Promise<unknown>; writev: (...a: unknown[]) => Promise<{ bytesWritten: number }> };
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'disk-writes-'));
    const h = await open(join(root, 'probe'), 'w');
    proto = Object.getPrototypeOf(h);
    await h.close();
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('gathers small chunks into writes of about 1 MiB', async () => {
    const data = patterned(5 << 20, 1);
    const s = new DiskBlobService(new DiskLayout(join(root, 'a')));
    const orig = { write: proto.write, writev: proto.writev };
    let calls = 0;
    proto.write = function (...a) {
      calls++;
      return orig.write.apply(this, a);
    };
    proto.writev = function (...a) {
      calls++;
      return orig.writev.apply(this, a);
    };
    try {
      const w = s.put();
      for (let off = 0; off < data.length; off += 16_000) await w.write(data.subarray(off, off + 16_000));
      assert.deepEqual(await w.close(), blake3(data));
    } finally {
      Object.assign(proto, orig);
    }
    assert.ok(calls <= 8, `${calls} writes for 5 MiB in 16 kB chunks`);
    assert.ok((await readAll(s, blake3(data)))!.equals(data));
    await s.close();
  });

  it('batch Has lists loose blob files once: later writes of its own count, "present" is checked on disk', async () => {
    const dir = join(root, 'c');
    const blob = (i: number) => patterned(PACK_BLOB_MAX + 1000 + i, 10 + i); // large enough for a file of its own
    const before = new DiskBlobService(new DiskLayout(dir));
    await putBytes(before, blob(0));
    await before.close();

    const s = new DiskBlobService(new DiskLayout(dir));
    const has = async (...bs: Buffer[]) => (await s.batches()).has(bs.map((b) => blake3(b)));
    assert.deepEqual(await has(blob(0), blob(1)), [true, false]); // lists the files now
    await putBytes(s, blob(1));
    assert.deepEqual(await has(blob(0), blob(1)), [true, true], 'its own write counts');

    // Another process adds a file: a batch Has may miss it (the blob would be
    // sent again, harmlessly); Stat looks at the disk.
    const other = new DiskBlobService(new DiskLayout(dir));
    await putBytes(other, blob(2));
    await other.close();
    assert.deepEqual(await has(blob(2)), [false]);
    assert.ok(await s.stat(blake3(blob(2))));

    // A listed file removed by hand is not reported present.
    await rm(join(dir, 'blobs', b3Hex(blake3(blob(0))).slice(0, 2), b3Hex(blake3(blob(0)))));
    assert.deepEqual(await has(blob(0)), [false]);
    await s.close();
  });

  it('finishes a write the kernel took only in part', async () => {
    const data = patterned(3 << 20, 2);
    const s = new DiskBlobService(new DiskLayout(join(root, 'b')));
    const orig = proto.writev;
    let shortened = 0;
    // Each writev takes only part of its second buffer (a full disk or a signal can do this).
    proto.writev = async function (this: unknown, buffers: unknown, position: unknown) {
      const bufs = buffers as Uint8Array[];
      if (bufs.length < 2) return orig.call(this, bufs, position);
      shortened++;
      const part = [bufs[0], bufs[1].subarray(0, Math.floor(bufs[1].length / 3))];
      return orig.call(this, part, position);
    };
    try {
      const w = s.put();
      for (let off = 0; off < data.length; off += 50_000) await w.write(data.subarray(off, off + 50_000));
      assert.deepEqual(await w.close(), blake3(data));
    } finally {
      proto.writev = orig;
    }
    assert.ok(shortened > 0);
    assert.ok((await readAll(s, blake3(data)))!.equals(data));
    await s.close();
  });
});
