// What a copy → S3 + PostgreSQL holds in memory, against the real Ceph RGW
// and PostgreSQL, as counts (no times): part buffers never outnumber the
// uploads filling + the sending slots, even with many large blobs and a
// single slot (which must not deadlock); pack buffers are reused across
// the pauses between packs, not made anew; a small blob costs a few
// promises, not put()'s writer.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';
import { blake3 } from '../../src/castore/digest.js';
import { parseS3Addr } from '../../src/scaleout/addr.js';
import { Packer, UPLOAD_SLOTS } from '../../src/scaleout/packer.js';
import { limitSending, partBuffers } from '../../src/scaleout/part-buffers.js';
import { openPgIndex } from '../../src/scaleout/pg-index.js';
import { PART_SIZE, S3Objects } from '../../src/scaleout/s3-objects.js';
import { LARGE_UPLOADS, SMALL_MAX } from '../../src/scaleout/s3-blob-service.js';
import { BlobUploader } from '../../src/upload/blob-uploader.js';
import { DEFAULT_RETRY } from '../../src/upload/retry.js';
import { freshScaleoutAddr, type ScaleoutAddr } from '../helpers/scaleout.js';
import { feedLikeIngest } from '../helpers/feed-uploader.js';
import { promisesDuring } from '../helpers/promises.js';
import { Rng } from '../helpers/seeded-random.js';

const seededBytes = (n: number, seed: number): Buffer => new Rng(seed).bytes(n);

describe('scale-out upload memory', () => {
  let where: ScaleoutAddr;
  let tmp: string;
  before(async () => {
    where = await freshScaleoutAddr('upload-memory');
    tmp = await mkdtemp(join(tmpdir(), 'upload-memory-'));
  });
  after(async () => {
    limitSending();
    await rm(tmp, { recursive: true, force: true });
    await where.drop();
  });

  it('many large blobs with one sending slot: all stored, part buffers <= uploads filling + 1', async () => {
    limitSending(1);
    const store = openStore(sameAddr(where.addr));
    try {
      // Twice LARGE_UPLOADS blobs of 1 to 3 parts, half read from files by the copy's uploader, half
      // written by put() writers at once in odd chunks (as a daemon's clients do): writers wait for a
      // large-upload slot, then for the one sending slot, holding their buffer and their caller's chunk.
      const sizes = [3 * PART_SIZE - 5, PART_SIZE + 1, 2 * PART_SIZE, SMALL_MAX + 7, 2 * PART_SIZE + 99, 3 * PART_SIZE, PART_SIZE - 3, 2 * PART_SIZE - 1];
      const datas = sizes.map((n, i) => seededBytes(n, 100 + i));
      const files = await Promise.all(
        datas.slice(0, 4).map(async (d, i) => {
          const path = join(tmp, `large-${i}`);
          await writeFile(path, d);
          return path;
        }),
      );
      const uploader = new BlobUploader(store.blobs, 8, DEFAULT_RETRY);
      const viaUploader = files.map((file, i) => uploader.ensure(blake3(datas[i]), datas[i].length, { file }));
      const viaWriters = datas.slice(4).map(async (d) => {
        const w = store.blobs.put();
        for (let off = 0, i = 0; off < d.length; i++) {
          const n = Math.min([65536, 3 << 20, 4097, 1 << 20][i % 4], d.length - off);
          await w.write(d.subarray(off, off + n));
          off += n;
        }
        return w.close();
      });
      await Promise.all(viaUploader);
      const digests = await Promise.all(viaWriters);
      digests.forEach((d, i) => assert.deepEqual(d, blake3(datas[4 + i])));
      const { peak, out } = partBuffers();
      assert.equal(out, 0, 'every part buffer given back');
      assert.ok(peak <= LARGE_UPLOADS + 1, `${peak} part buffers at once (at most ${LARGE_UPLOADS} filling + 1 sending)`);
      for (const d of datas) assert.ok((await readAll(store.blobs, blake3(d)))?.equals(d), `${d.length} bytes read back`);
    } finally {
      limitSending();
      await store.close();
    }
  });

  it('pack buffers are reused across the pauses between packs, not made anew for each', async () => {
    const loc = parseS3Addr(where.addr);
    const s3 = new S3Objects(loc);
    const db = openPgIndex(loc.indexUrl);
    const packer = new Packer(s3, db, SMALL_MAX);
    try {
      // 12 packs, each waited for: the packer is idle (nothing open or uploading) between them.
      for (let p = 0; p < 12; p++) {
        const added = Array.from({ length: 4 }, (_, i) => packer.add([seededBytes(200_000 + i, 1000 + p * 4 + i)], 200_000 + i));
        await packer.flush();
        await Promise.all(added.map((a) => a.done));
      }
      assert.ok(packer.buffersMade <= UPLOAD_SLOTS + 2, `${packer.buffersMade} pack buffers made for 12 packs`);
    } finally {
      s3.close();
      await db.release();
    }
  });

  it('a small blob through the copy\'s uploader costs a few promises, not a writer\'s', async () => {
    // Raw: compressing a blob costs promises of its own, whichever way it came in.
    const store = openStore(sameAddr(`${where.addr}&compression=none`));
    try {
      const n = 2000;
      const rng = new Rng(77);
      const files = Array.from({ length: n }, (_, i) => rng.bytes(1000 + (i % 100) * 10));
      const uploader = new BlobUploader(store.blobs, 256, DEFAULT_RETRY);
      const promises = await promisesDuring(() => feedLikeIngest(uploader, files));
      assert.equal(uploader.stats.blobsSent, n);
      // Measured at faa6d9c: 20.5 per blob (Stat, limiter, putSmall, its pack); 26.5 through put()'s writer.
      assert.ok(promises / n <= 23, `${(promises / n).toFixed(1)} promises per small blob`);
      for (const f of files.slice(0, 50)) assert.ok((await readAll(store.blobs, blake3(f)))?.equals(f));
      // The writer path stays right for what does not come whole (a daemon's streams).
      const d = seededBytes(5000, 5);
      assert.deepEqual(await putBytes(store.blobs, d), blake3(d));
    } finally {
      await store.close();
    }
  });
});
