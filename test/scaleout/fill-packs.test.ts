// A copy into S3 + PostgreSQL costs few round trips per pack, against the
// real Ceph RGW and PostgreSQL: the copy's uploader keeps enough small
// blobs in flight that a pack holds more than the 256 it once could (each
// pack then waited to be durable before the next could fill), and a
// PathInfo Put's content check loads a wide directory closure in a few
// queries, not one per directory.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { readAll } from '../../src/castore/blob-service.js';
import { blake3 } from '../../src/castore/digest.js';
import { putClosure } from '../../src/castore/directory-service.js';
import type { Directory } from '../../src/castore/messages.js';
import { parseS3Addr } from '../../src/scaleout/addr.js';
import { openPgIndex } from '../../src/scaleout/pg-index.js';
import { PgDirectoryService } from '../../src/scaleout/pg-directory-service.js';
import type { S3BlobService } from '../../src/scaleout/s3-blob-service.js';
import { BlobUploader } from '../../src/upload/blob-uploader.js';
import { DEFAULT_RETRY } from '../../src/upload/retry.js';
import { b, dirNode, emptyDir } from '../helpers/castore-fixtures.js';
import { feedLikeIngest } from '../helpers/feed-uploader.js';
import { freshScaleoutAddr, type ScaleoutAddr } from '../helpers/scaleout.js';
import { Rng } from '../helpers/seeded-random.js';

const FILES = 3000;

describe('scale-out copy: round trips per pack and per closure', () => {
  let where: ScaleoutAddr;
  before(async () => {
    where = await freshScaleoutAddr('fill-packs');
  });
  after(() => where.drop());

  it("a copy's small files fill packs of more than 256 blobs, and all read back", async () => {
    const store = openStore(sameAddr(where.addr));
    const rng = new Rng(7);
    // ~42 MiB: more than the uploader's slabs (28 MiB), so memory handed back early is read into again.
    const files = Array.from({ length: FILES }, (_, i) => rng.bytes(4000 + (i % 50) * 400));
    try {
      // The copy's own uploader (copy.ts gives it 256 in flight), fed as ingest.ts does: each file read into
      // the memory it gives once it has room, and handed over without waiting for it to be stored.
      const uploader = new BlobUploader(store.blobs, 256, DEFAULT_RETRY);
      await feedLikeIngest(uploader, files);
      assert.equal(uploader.stats.blobsSent, FILES);
      assert.ok(uploader.sharedMemory.made <= 7, `${uploader.sharedMemory.made} slabs made`);
      const index = openPgIndex(parseS3Addr(where.addr).indexUrl);
      try {
        const packs = (await index.query<{ n: string }>('SELECT count(*) AS n FROM blobs GROUP BY object ORDER BY 1 DESC')).rows.map((r) => Number(r.n));
        assert.equal(packs.reduce((a, n) => a + n, 0), FILES, 'every blob indexed once');
        assert.ok(packs[0] > 256, `the largest pack holds ${packs[0]} blobs (packs: ${packs.join(', ')})`);
      } finally {
        await index.release();
      }
      // The memory each file was read into went back to the uploader (and was reused): the bytes stored are the files'.
      for (const f of files) assert.ok((await readAll(store.blobs, blake3(f)))?.equals(f));
    } finally {
      await store.close();
    }
  });

  it('small blobs are not Stat-ed first: a pack asks the index once, and stores again none already there', async () => {
    const rng = new Rng(8);
    const files = Array.from({ length: 300 }, (_, i) => rng.bytes(1000 + i * 10));
    for (const round of [1, 2]) {
      const store = openStore(sameAddr(where.addr));
      const svc = store.blobs as S3BlobService;
      try {
        const uploader = new BlobUploader(store.blobs, 256, DEFAULT_RETRY);
        await feedLikeIngest(uploader, files);
        assert.equal(svc.indexLookups, 0, `round ${round}: digests Stat-ed`);
        // The second round's blobs are all indexed: its pack is never PUT.
        if (round === 2) assert.equal(svc.s3Requests, 0, 'S3 requests for blobs already stored');
        for (const f of files) assert.ok((await readAll(store.blobs, blake3(f)))?.equals(f));
      } finally {
        await store.close();
      }
    }
  });

  it("a closure of 600 sibling directories is walked in a few queries", async () => {
    const dirs = new PgDirectoryService(parseS3Addr(where.addr).indexUrl);
    try {
      const leaves: Directory[] = Array.from({ length: 600 }, (_, i) => ({ ...emptyDir(), symlinks: [{ name: b(`l${i}`), target: b(`t${i}`) }] }));
      const root: Directory = { ...emptyDir(), directories: leaves.map((d, i) => dirNode(`d${String(i).padStart(3, '0')}`, d)) };
      const rootDigest = await putClosure(dirs, [...leaves, root]);
      const before = dirs.loadQueries;
      let n = 0;
      for await (const _ of dirs.getRecursive(rootDigest)) n++;
      assert.equal(n, 601);
      const queries = dirs.loadQueries - before;
      assert.ok(queries <= 8, `${queries} queries for 601 directories`);
    } finally {
      await dirs.close();
    }
  });
});
