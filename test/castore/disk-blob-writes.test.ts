// A large blob's own file is written with few system calls whatever the
// chunk sizes it arrives in (a daemon passes on network reads of 16 KiB),
// and completely even when the kernel takes a write only in part: with
// O_DIRECT from aligned slabs where the filesystem allows, through the page
// cache otherwise or when slabs run out. Batch Has answers for such files
// from one listing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskBlobService, PACK_BLOB_MAX } from '../../src/castore/disk/disk-blob-service.js';
import { DiskLayout } from '../../src/castore/disk/disk-layout.js';
import { b3Hex, blake3 } from '../../src/castore/digest.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';
import { AlignedSlabs, SLAB_BYTES } from '../../src/castore/disk/aligned-slabs.js';
import { directWriteCount, directWritesWork } from '../../src/castore/disk/direct-io.js';

const readdirNames = (dir: string) => readdir(dir).catch(() => [] as string[]);

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

  const blobFile = (dir: string, data: Buffer) => join(dir, 'blobs', b3Hex(blake3(data)).slice(0, 2), b3Hex(blake3(data)));
  const putInChunks = async (s: DiskBlobService, data: Buffer, size: number) => {
    const w = s.put();
    for (let off = 0; off < data.length; off += size) await w.write(data.subarray(off, off + size));
    return w.close();
  };

  it('gives every chunk back once it holds it no more, not before (so a copy reads its next chunk into it), with slabs and without', async () => {
    for (const [name, slabs] of [['released-direct', new AlignedSlabs(16)], ['released-cached', null]] as const) {
      const dir = join(root, name);
      const s = new DiskBlobService(new DiskLayout(dir), slabs);
      for (const [size, chunk] of [[100, 100], [PACK_BLOB_MAX, 64 << 10], [3 * SLAB_BYTES + 5000, 70_000], [2 * SLAB_BYTES, SLAB_BYTES]]) {
        const data = patterned(size, size);
        const given = new Map<number, number>();
        const w = s.put();
        for (let off = 0; off < data.length; off += chunk) {
          // A chunk of its own, scribbled over once given back (as a reader reuses it): given back too early, the blob would hold the scribbles.
          const piece = Buffer.from(data.subarray(off, off + chunk));
          await w.write(piece, () => {
            given.set(off, (given.get(off) ?? 0) + 1);
            piece.fill(0xee);
          });
        }
        assert.deepEqual(await w.close(), blake3(data));
        const offs = [...given.keys()].sort((a, b) => a - b);
        assert.equal(offs.length, Math.ceil(size / chunk), `${name}, ${size} bytes: every chunk given back`);
        assert.ok([...given.values()].every((n) => n === 1), `${name}, ${size} bytes: once each`);
        assert.deepEqual(await readAll(s, blake3(data)), data);
      }
      await s.close();
    }
  });

  it('writes large blobs with O_DIRECT from aligned slabs, exactly as long as the blob', async (t) => {
    const dir = join(root, 'direct');
    const slabs = new AlignedSlabs(16);
    await new DiskLayout(dir).init();
    if (!(await directWritesWork(join(dir, 'tmp'), slabs))) return t.skip(`${dir}'s filesystem takes no O_DIRECT writes`);
    const s = new DiskBlobService(new DiskLayout(dir), slabs);
    for (const [i, n] of [PACK_BLOB_MAX + 1, SLAB_BYTES - 1, SLAB_BYTES, SLAB_BYTES + 1, 3 * SLAB_BYTES + 4096, 5 * SLAB_BYTES + 123].entries()) {
      const data = patterned(n, 100 + i);
      const before = directWriteCount();
      assert.deepEqual(await putInChunks(s, data, 16_000), blake3(data));
      assert.equal(directWriteCount() - before, Math.ceil(n / SLAB_BYTES), `slab writes for ${n} bytes`);
      assert.equal((await stat(blobFile(dir, data))).size, n, 'the last slab\'s padding is cut off');
      assert.ok((await readAll(s, blake3(data)))!.equals(data), `${n} bytes read back`);
    }
    assert.ok(slabs.size <= 5, `${slabs.size} slabs for one blob at a time`);
    await s.close();
  });

  it('goes on through the page cache when the slabs run out', async () => {
    const dir = join(root, 'few-slabs');
    const slabs = new AlignedSlabs(3);
    const s = new DiskBlobService(new DiskLayout(dir), slabs);
    const blobs = [0, 1, 2].map((i) => patterned(4 * SLAB_BYTES + 777 * i, 200 + i));
    // Three blobs at once take the slabs from each other.
    const digests = await Promise.all(blobs.map((b, i) => putInChunks(s, b, 10_000 + 3_000 * i)));
    assert.deepEqual(digests, blobs.map((b) => blake3(b)));
    assert.equal(slabs.size, 3);
    for (const b of blobs) {
      assert.equal((await stat(blobFile(dir, b))).size, b.length);
      assert.ok((await readAll(s, blake3(b)))!.equals(b));
    }
    await s.close();
  });

  it('an aborted blob gives its slabs back, also from writes still running', async () => {
    const dir = join(root, 'aborts');
    const slabs = new AlignedSlabs(6);
    const s = new DiskBlobService(new DiskLayout(dir), slabs);
    const data = patterned(6 * SLAB_BYTES - 1000, 300); // the running write ends mid-slab
    for (const at of [SLAB_BYTES / 2, 3 * SLAB_BYTES + 5, 5 * SLAB_BYTES]) {
      const w = s.put();
      await w.write(data.subarray(0, PACK_BLOB_MAX + 1)); // a file of its own from here
      await w.write(data.subarray(PACK_BLOB_MAX + 1, at));
      const running = w.write(data.subarray(at)).catch((err: Error) => err);
      await w.abort();
      await running;
      assert.equal(slabs.idle, slabs.size, `all slabs back after an abort at ${at}`);
    }
    const before = directWriteCount();
    assert.deepEqual(await putInChunks(s, data, 100_000), blake3(data));
    assert.ok(directWriteCount() - before >= 6, 'the next blob still writes with O_DIRECT');
    assert.deepEqual(await readdirNames(join(dir, 'tmp')), [], 'no temp files left');
    await s.close();
  });

  it('gathers small chunks into writes of about 1 MiB', async () => {
    const data = patterned(5 << 20, 1);
    const s = new DiskBlobService(new DiskLayout(join(root, 'a')), null);
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
    const s = new DiskBlobService(new DiskLayout(join(root, 'b')), null);
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
