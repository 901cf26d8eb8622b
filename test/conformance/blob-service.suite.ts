// Conformance suite every BlobService backend must pass.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { BlobService } from '../../src/castore/blob-service.js';
import { batchesOf, putBytes, readAll } from '../../src/castore/blob-service.js';
import { blake3 } from '../../src/castore/digest.js';
import { isKind } from '../../src/castore/errors.js';
import { b, hex, blobB } from '../helpers/castore-fixtures.js';

export interface Backend<T> {
  service: T;
  cleanup(): Promise<void>;
}

export function blobServiceSuite(name: string, make: () => Promise<Backend<BlobService>>): void {
  describe(`BlobService conformance: ${name}`, () => {
    let be: Backend<BlobService>;
    let blobs: BlobService;
    before(async () => {
      be = await make();
      blobs = be.service;
    });
    after(() => be.cleanup());

    const vectors: [string, Buffer, string][] = [
      ['empty', Buffer.alloc(0), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262'],
      ['x86_64-linux', b('x86_64-linux'), '28e337fc81c4c7b61f227027949a4012561ecead12c67f5f473ef1b8297035f0'],
      ['Hello World!', b('Hello World!'), '5ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c'],
      ['00 01', hex('0001'), '7b7015bb92cf0b318037702a6cdd81dee41224f734684c2c122cd6359cb1ee63'],
      ['BLOB_B', blobB(), 'a82c5154a7a0c262c6fdb929a317585646f8fbcf80326d0a7b8747edaf2d99d2'],
    ];
    for (const [label, data, digestHex] of vectors) {
      it(`stores ${label} under the spec digest and reads it back`, async () => {
        const digest = await putBytes(blobs, data);
        assert.equal(digest.toString('hex'), digestHex);
        assert.ok(await blobs.stat(digest));
        assert.deepEqual(await readAll(blobs, digest), data);
      });
    }

    it('sizeOf (where a backend has it) answers the real length, undefined when absent', async (t) => {
      if (!blobs.sizeOf) return t.skip('this backend cannot tell sizes cheaply');
      const small = b('sized');
      const large = Buffer.alloc((1 << 20) + 3, 's'); // packed and file-of-its-own sizes alike
      assert.equal(await blobs.sizeOf(await putBytes(blobs, small)), small.length);
      assert.equal(await blobs.sizeOf(await putBytes(blobs, large)), large.length);
      assert.equal(await blobs.sizeOf(await putBytes(blobs, new Uint8Array(0))), 0);
      assert.equal(await blobs.sizeOf(blake3(b('never stored'))), undefined);
      await assert.rejects(() => blobs.sizeOf!(new Uint8Array(20)), (e) => isKind(e, 'invalid'));
    });

    it('sizesOf (where a backend has it) answers like sizeOf, in order, repeats and absent ones included', async (t) => {
      if (!blobs.sizesOf) return t.skip('this backend has no batch size lookup');
      const small = await putBytes(blobs, b('sizes small'));
      const large = await putBytes(blobs, Buffer.alloc((1 << 20) + 5, 'z'));
      const empty = await putBytes(blobs, new Uint8Array(0));
      const absent = blake3(b('sizes never stored'));
      assert.deepEqual(await blobs.sizesOf([large, absent, small, empty, small]), [(1 << 20) + 5, undefined, 11, 0, 11]);
      assert.deepEqual(await blobs.sizesOf([]), []);
      await assert.rejects(() => blobs.sizesOf!([small, new Uint8Array(20)]), (e) => isKind(e, 'invalid'));
    });

    it('readRange and readMany (where a backend has them) give exact bytes, undefined when absent, and refuse out-of-bounds', async (t) => {
      if (!blobs.readRange && !blobs.readMany) return t.skip('this backend reads one blob at a time');
      const pattern = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
      const smalls = [pattern(10, 1), pattern(4000, 2), Buffer.alloc(0), pattern(70_000, 3)];
      const large = pattern((1 << 20) * 2 + 7, 4); // an object of its own
      const ds = await Promise.all(smalls.map((x) => putBytes(blobs, x)));
      const dl = await putBytes(blobs, large);
      const missing = blake3(b('never stored either'));
      if (blobs.readMany) {
        const got = (await blobs.readMany([...ds, dl, missing], [...smalls.map((x) => x.length), large.length, 5])).map((x) => x && Buffer.concat(x));
        assert.deepEqual(got.slice(0, 4), smalls);
        assert.ok(got[4]?.equals(large));
        assert.equal(got[5], undefined);
        // A blob longer than its caller budgeted is refused before it is read.
        await assert.rejects(() => blobs.readMany!([ds[1]], [100]), (e) => isKind(e, 'storage') && /4000 bytes/.test((e as Error).message));
      }
      if (blobs.readRange) {
        const range = async (d: Uint8Array, offset: number, length: number) => {
          const chunks = await blobs.readRange!(d, offset, length);
          return chunks && Buffer.concat(chunks);
        };
        assert.ok((await range(dl, 0, 5))?.equals(large.subarray(0, 5)));
        assert.ok((await range(dl, (1 << 20) + 3, 1 << 20))?.equals(large.subarray((1 << 20) + 3, (2 << 20) + 3)));
        assert.ok((await range(ds[1], 100, 200))?.equals(smalls[1].subarray(100, 300)));
        assert.equal(await blobs.readRange(missing, 0, 1), undefined);
        await assert.rejects(() => blobs.readRange!(dl, large.length - 2, 3), (e) => isKind(e, 'invalid'));
      }
    });

    it('putSmall (where a backend has it) stores whole small blobs like put(), tells once their bytes are copied, refuses larger ones', async (t) => {
      if (!blobs.putSmall) return t.skip('this backend has no whole-blob put');
      const max = blobs.putSmallUpTo ?? 0;
      assert.ok(max > 0, 'putSmallUpTo is set with putSmall');
      const datas = [Buffer.alloc(0), b(`putSmall ${name}`), Buffer.alloc(max, 'm'), b(`putSmall ${name}`)];
      let copied = 0;
      const digests = await Promise.all(datas.map((d) => blobs.putSmall!(d, () => copied++)));
      assert.equal(copied, datas.length, 'copied called once per blob');
      for (const [i, d] of datas.entries()) {
        assert.deepEqual(digests[i], blake3(d));
        assert.deepEqual(await readAll(blobs, digests[i]), d);
      }
      await assert.rejects(() => blobs.putSmall!(Buffer.alloc(max + 1)), (e) => isKind(e, 'invalid'));
    });

    it('reports absent blobs as undefined', async () => {
      const missing = blake3(b('never stored'));
      assert.equal(await blobs.stat(missing), undefined);
      assert.equal(await blobs.read(missing), undefined);
    });

    it('readLent (where a backend has it) gives the bytes of read(), with chunks given back and read into again', async (t) => {
      if (!blobs.readLent) return t.skip('this backend has no lent reads');
      // Two large blobs (a file each on disk), read in turns, every chunk given back as soon as it is copied.
      const datas = [0x5a, 0xa5].map((fill, i) => {
        const d = Buffer.alloc(3 * (1 << 20) + 12345, fill);
        for (let o = 0; o < d.length; o += 4096) d.writeUInt32LE(o ^ (i << 28), o);
        return d;
      });
      const digests: Uint8Array[] = [];
      for (const d of datas) digests.push(await putBytes(blobs, d));
      const reads = await Promise.all(digests.map((d) => blobs.readLent!(d)));
      const its = reads.map((r) => r!.chunks[Symbol.asyncIterator]());
      const got: Buffer[][] = [[], []];
      for (let done = 0; done < 2; ) {
        done = 0;
        for (const i of [0, 1]) {
          const n = await its[i].next();
          if (n.done) {
            done++;
            continue;
          }
          got[i].push(Buffer.from(n.value));
          reads[i]!.giveBack(n.value);
        }
      }
      for (const i of [0, 1]) assert.ok(Buffer.concat(got[i]).equals(datas[i]), `blob ${i} read back lent differs`);
      assert.equal(await blobs.readLent(blake3(b('never stored'))), undefined);
      const small = b('a small blob, packed');
      const lentSmall = (await blobs.readLent(await putBytes(blobs, small)))!;
      const parts: Buffer[] = [];
      for await (const c of lentSmall.chunks) parts.push(Buffer.from(c)), lentSmall.giveBack(c);
      assert.deepEqual(Buffer.concat(parts), small);
    });

    it('rejects digests of the wrong length', async () => {
      for (const len of [0, 20, 31, 33]) {
        const d = new Uint8Array(len);
        await assert.rejects(() => blobs.stat(d), (e) => isKind(e, 'invalid'), `stat ${len}`);
        await assert.rejects(() => blobs.read(d), (e) => isKind(e, 'invalid'), `read ${len}`);
      }
    });

    it('hashes the concatenation, whatever the write boundaries', async () => {
      const data = Buffer.alloc(3 * 1024 * 1024 + 17);
      for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
      const w = blobs.put();
      let off = 0;
      for (const size of [1, 4095, 70000, 1 << 20]) {
        await w.write(data.subarray(off, off + size));
        off += size;
      }
      await w.write(data.subarray(off)); // larger than one gRPC chunk
      const digest = await w.close();
      assert.deepEqual(digest, blake3(data));
      assert.deepEqual(await readAll(blobs, digest), data);
    });

    it('accepts the same blob twice, also concurrently', async () => {
      const data = b('duplicate content '.repeat(1000));
      const digests = await Promise.all(Array.from({ length: 8 }, () => putBytes(blobs, data)));
      for (const d of digests) assert.deepEqual(d, blake3(data));
      assert.deepEqual(await readAll(blobs, digests[0]), data);
    });

    it('makes nothing visible when a put is aborted', async () => {
      const data = b('aborted upload '.repeat(5000));
      const w = blobs.put();
      await w.write(data);
      await w.abort();
      assert.equal(await blobs.stat(blake3(data)), undefined);
    });

    // Batches: the store's own (protos/nixcastore/v1/blob_batch.proto) or one call per blob; same answers either way.
    it('batches: Has answers in order, Put stores every blob (empty and repeated ones too)', async () => {
      const datas = [b(`batch ${name} one`), Buffer.alloc(0), b(`batch ${name} two`.repeat(500)), b(`batch ${name} one`)];
      const stored = b(`batch ${name} stored before`);
      await putBytes(blobs, stored);
      const batches = await batchesOf(blobs);
      assert.ok(batches.maxPutBytes >= 64 << 10, `maxPutBytes ${batches.maxPutBytes}`);
      const fresh = [b(`batch ${name} never stored`), b(`batch ${name} two`.repeat(500))];
      assert.deepEqual(await batches.has([blake3(stored), ...fresh.map(blake3)]), [true, false, false]);
      assert.deepEqual(await batches.has([]), []);
      await batches.put(datas.map((data) => ({ digest: blake3(data), data })));
      assert.deepEqual(await batches.has(datas.map(blake3)), [true, true, true, true]);
      for (const data of datas) assert.deepEqual(await readAll(blobs, blake3(data)), data);
      await batches.put([{ digest: blake3(stored), data: stored }]); // already there: fine
    });

    it('batches: a blob that is not its digest fails the Put, and none of that batch is stored', async () => {
      const good = b(`batch ${name} good neighbour`);
      const bad = b(`batch ${name} bytes`);
      const batches = await batchesOf(blobs);
      await assert.rejects(
        () => batches.put([{ digest: blake3(good), data: good }, { digest: blake3(b('something else')), data: bad }]),
        (e) => isKind(e, 'invalid') && /blob 1: its \d+ bytes hash to b3:/.test((e as Error).message),
      );
      assert.deepEqual(await batches.has([blake3(good), blake3(bad)]), [false, false]);
      assert.equal(await blobs.stat(blake3(good)), undefined);
    });

    it('batches: digests of the wrong length are invalid', async () => {
      const batches = await batchesOf(blobs);
      for (const len of [0, 31, 33]) {
        const d = new Uint8Array(len);
        await assert.rejects(() => batches.has([blake3(b('x')), d]), (e) => isKind(e, 'invalid'), `has ${len}`);
        await assert.rejects(() => batches.put([{ digest: d, data: b('x') }]), (e) => isKind(e, 'invalid'), `put ${len}`);
      }
    });

    it('streams a large blob back in pieces', async () => {
      const data = Buffer.alloc(20 * 1024 * 1024, 0x5a);
      data.write('head');
      data.write('tail', data.length - 4);
      const digest = await putBytes(blobs, data);
      const stream = await blobs.read(digest);
      assert.ok(stream);
      let total = 0;
      let pieces = 0;
      const h: Buffer[] = [];
      for await (const chunk of stream) {
        total += chunk.length;
        pieces++;
        h.push(Buffer.from(chunk));
      }
      assert.equal(total, data.length);
      assert.ok(pieces > 1, 'a 20 MiB blob arrives in more than one piece');
      assert.ok(Buffer.concat(h).equals(data));
    });
  });
}
