// Large blobs of the scale-out store go to S3 in parts, each byte copied
// once (part-upload.ts), against the real Ceph RGW: multipart and
// single-PUT blobs read back byte for byte whatever the chunk sizes they
// were written in, a 7-part blob is one object of its size, an aborted
// upload leaves no multipart upload or object behind, every chunk written
// is released to its caller once copied, and a failing S3
// fails the upload with an error that says what to fix.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ListMultipartUploadsCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { readAll } from '../../src/castore/blob-service.js';
import { blake3 } from '../../src/castore/digest.js';
import { parseS3Addr } from '../../src/scaleout/addr.js';
import { PART_SIZE, S3Objects } from '../../src/scaleout/s3-objects.js';
import { PartUpload } from '../../src/scaleout/part-upload.js';
import { freshScaleoutAddr, scaleoutEnv, scaleoutS3Client, type ScaleoutAddr } from '../helpers/scaleout.js';
import { Rng } from '../helpers/seeded-random.js';

/** Distinct, deterministic bytes (the tests' one seeded PRNG). */
const seededBytes = (n: number, seed: number): Buffer => new Rng(seed).bytes(n);

/** Writes `data` in chunks of the given sizes, round robin. */
async function writeIn(w: { write(c: Uint8Array): Promise<void> }, data: Buffer, sizes: number[]): Promise<void> {
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length], data.length - off);
    await w.write(data.subarray(off, off + n));
    off += n;
  }
}

describe('scale-out large blobs in parts', () => {
  let where: ScaleoutAddr;
  before(async () => {
    where = await freshScaleoutAddr('parts');
  });
  after(() => where.drop());

  it('blobs of one part and of several, written in odd chunks, read back', async () => {
    const store = openStore(sameAddr(where.addr));
    try {
      for (const [i, size] of [(1 << 20) + 1, PART_SIZE, 2 * PART_SIZE + 12345].entries()) {
        const data = seededBytes(size, i + 7);
        const w = store.blobs.put();
        // Every chunk is handed back once copied (the caller reads into it again).
        let chunks = 0;
        let released = 0;
        await writeIn({ write: (c) => (chunks++, w.write(c, () => released++)) }, data, [1, 65536, 3 << 20, 4097]);
        assert.deepEqual(await w.close(), blake3(data));
        assert.equal(released, chunks, `${released} of ${chunks} chunks released`);
        assert.ok((await readAll(store.blobs, blake3(data)))?.equals(data), `${size} bytes read back`);
      }
    } finally {
      await store.close();
    }
  });

  it('a blob of 7 parts becomes one object of its size', async () => {
    const s3 = new S3Objects(parseS3Addr(where.addr));
    try {
      const data = seededBytes(6 * PART_SIZE + 5, 99);
      const up = new PartUpload(s3, 'blobs/seven-parts');
      await writeIn(up, data, [1 << 20]);
      await up.finish();
      const head = await scaleoutS3Client(await scaleoutEnv()).send(new HeadObjectCommand({ Bucket: where.bucket, Key: s3.key('blobs/seven-parts') }));
      assert.equal(head.ContentLength, data.length);
    } finally {
      s3.close();
    }
  });

  it('an aborted upload leaves no multipart upload and no object', async () => {
    const s3 = new S3Objects(parseS3Addr(where.addr));
    const client = scaleoutS3Client(await scaleoutEnv());
    try {
      const up = new PartUpload(s3, 'blobs/aborted');
      await writeIn(up, seededBytes(2 * PART_SIZE + 1, 5), [1 << 20]);
      await up.abort();
      const open = await client.send(new ListMultipartUploadsCommand({ Bucket: where.bucket }));
      assert.deepEqual((open.Uploads ?? []).map((u) => u.Key), []);
      await assert.rejects(client.send(new HeadObjectCommand({ Bucket: where.bucket, Key: s3.key('blobs/aborted') })));
    } finally {
      s3.close();
      client.destroy();
    }
  });

  it('a missing bucket fails the upload, saying what to fix', async () => {
    const s3 = new S3Objects({ ...parseS3Addr(where.addr), bucket: `no-such-bucket-${process.pid}` });
    try {
      const up = new PartUpload(s3, 'blobs/x');
      const err = await writeIn(up, seededBytes(4 * PART_SIZE, 1), [1 << 20]).then(() => up.finish()).then(() => undefined, (e: unknown) => e);
      assert.match(String(err), /bucket no-such-bucket-\d+ does not exist .*create it first/);
      await up.abort();
    } finally {
      s3.close();
    }
  });
});
