// The uploader's room() bounds uploads under way by count as well as by
// bytes: tiny files hold almost no bytes, and the byte budget alone let
// tens of thousands of uploads (promises, closures, digests each) wait for
// batches at once, which V8 promoted and let the old generation grow on.
// A real on-disk store; the uploads are started in one turn, so none has
// settled when room is asked about.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobUploader } from '../../src/upload/blob-uploader.js';
import { blake3 } from '../../src/castore/digest.js';
import { blobServiceFromAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';

const FAST_RETRY = { attempts: 2, baseMs: 1, maxMs: 5 };

it('uploads of tiny blobs: room() waits once maxUploading are under way, though their bytes are far below the budget', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'uploader-count-'));
  const blobs = blobServiceFromAddr(fileAddr(join(tmp, 'store')));
  const up = new BlobUploader(blobs, 64, FAST_RETRY);
  try {
    const uploads: Promise<void>[] = [];
    let bytes = 0;
    for (let i = 0; i < up.maxUploading; i++) {
      assert.ok(up.hasRoom(16), `room for upload ${i}`);
      const mem = up.memoryFor(16);
      mem.fill(0);
      mem.writeUInt32LE(i, 0);
      bytes += mem.length;
      uploads.push(up.ensure(blake3(mem), mem.length, { bytes: mem }));
    }
    assert.ok(bytes < up.maxHeldBytes / 100, 'the bytes held are a sliver of the budget');
    assert.equal(up.hasRoom(16), false, `no room with ${up.maxUploading} uploads under way`);
    let roomed = false;
    const room = up.room(16).then(() => (roomed = true));
    await Promise.all(uploads);
    await room;
    assert.ok(roomed && up.hasRoom(16), 'room again once they are stored');
    assert.equal(up.stats.blobsSent, up.maxUploading);
  } finally {
    await blobs.close();
    await rm(tmp, { recursive: true, force: true });
  }
});
