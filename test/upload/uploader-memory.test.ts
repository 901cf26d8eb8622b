// A copy into a store in this process (file://) reads its small files into
// a few reused slabs, as a copy to a daemon does: a fresh buffer per file
// touched new memory for every byte read (a page fault per 4 KiB). The
// memory is reused only once the store is done with it, so what lands on
// disk is what was read. A real on-disk store.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobUploader } from '../../src/upload/blob-uploader.js';
import { blake3 } from '../../src/castore/digest.js';
import { readAll } from '../../src/castore/blob-service.js';
import { blobServiceFromAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';

const FAST_RETRY = { attempts: 2, baseMs: 1, maxMs: 5 };

/** Blob i's bytes, written into `mem`. */
function blob(i: number, mem: Buffer): Buffer {
  mem.fill(i & 0xff);
  mem.writeUInt32LE(i, 0);
  mem.writeUInt32LE(i * 7919, mem.length - 4);
  return mem;
}

it('an uploader into a file:// store reads small files into reused memory, and stores what was read', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'uploader-memory-'));
  const blobs = blobServiceFromAddr(fileAddr(join(tmp, 'store')));
  const up = new BlobUploader(blobs, 64, FAST_RETRY);
  try {
    // Sizes of packed blobs and of blobs with a file of their own; 200 MiB in all, far more than the slabs hold.
    const sizes = [640 << 10, 3000, 200 << 10, 1 << 20, 300 << 10];
    const digests: Buffer[] = [];
    const uploads: Promise<void>[] = [];
    for (let i = 0; i < 400; i++) {
      const size = sizes[i % sizes.length];
      await up.room(size);
      const mem = up.memoryFor(size);
      assert.ok(mem.buffer instanceof SharedArrayBuffer, `blob ${i}: read into a slab, not fresh memory`);
      digests[i] = blake3(blob(i, mem));
      uploads.push(up.ensure(digests[i], size, { bytes: mem }));
    }
    await Promise.all(uploads);
    assert.equal(up.stats.blobsSent, 400);
    const mem = up.sharedMemory;
    assert.ok(mem.made <= 10, `${mem.made} slabs made`);
    for (let i = 0; i < 400; i++) {
      const stored = await readAll(blobs, digests[i]);
      assert.ok(stored?.equals(blob(i, Buffer.alloc(sizes[i % sizes.length]))), `blob ${i} is stored as it was read`);
    }
  } finally {
    await up.close();
    await blobs.close();
    await rm(tmp, { recursive: true, force: true });
  }
});
