// Small blobs of the scale-out store are copied once, into their pack's
// buffer, which is the PUT's body; against
// the real Ceph RGW and PostgreSQL, every blob reads back byte for byte:
// from a pack sent whole, from one without a blob that another writer
// indexed meanwhile, when the same bytes are put twice at once, and when
// a pack's PUT was refused and the same blobs are put again.
import { describe, it, before, after } from 'node:test';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import assert from 'node:assert/strict';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';
import { blake3 } from '../../src/castore/digest.js';
import { parseS3Addr } from '../../src/scaleout/addr.js';
import { Packer, PACK_TARGET } from '../../src/scaleout/packer.js';
import { S3Objects } from '../../src/scaleout/s3-objects.js';
import { openPgIndex } from '../../src/scaleout/pg-index.js';
import { SMALL_MAX } from '../../src/scaleout/s3-blob-service.js';
import { freshScaleoutAddr, type ScaleoutAddr } from '../helpers/scaleout.js';
import { Rng } from '../helpers/seeded-random.js';

/**
 * An HTTP proxy in front of RGW that answers 403 to every PUT of a pack
 * object while `refuse.packs` is set (403 is not retried by the SDK).
 */
async function packRefusingProxy(target: string): Promise<{ endpoint: string; refuse: { packs: boolean; refused: number }; close(): Promise<void> }> {
  const to = new URL(target);
  const refuse = { packs: true, refused: 0 };
  const server: Server = createServer((req, res) => {
    if (refuse.packs && req.method === 'PUT' && req.url?.includes('/packs/')) {
      refuse.refused++;
      req.resume();
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>refused by the test</Message></Error>');
      return;
    }
    const up = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    refuse,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Distinct, deterministic bytes (the tests' one seeded PRNG). */
const seededBytes = (n: number, seed: number): Buffer => new Rng(seed).bytes(n);

describe('scale-out packer', () => {
  let where: ScaleoutAddr;
  before(async () => {
    where = await freshScaleoutAddr('packer');
  });
  after(() => where.drop());

  it('every blob of several packs, added whole or in chunks, reads back', async () => {
    const loc = parseS3Addr(where.addr);
    const s3 = new S3Objects(loc);
    const db = openPgIndex(loc.indexUrl);
    const packer = new Packer(s3, db, SMALL_MAX);
    const blobs = Array.from({ length: Math.ceil((3 * PACK_TARGET) / (700 << 10)) + 5 }, (_, i) => seededBytes(i % 7 === 0 ? 0 : (700 << 10) - i * 13, i + 1));
    const digests: Buffer[] = [];
    // One blob in several chunks, as a daemon receives it.
    const chunked = (b: Buffer) => [b.subarray(0, 1000), b.subarray(1000, 5000), b.subarray(5000)];
    for (const [i, b] of blobs.entries()) {
      const { digest, done } = packer.add(i % 2 ? chunked(b) : [b], b.length);
      digests.push(digest);
      // Every third blob waits for its pack: packs of all sizes, one after another.
      if (i % 3 === 0) await done;
    }
    await packer.flush();
    assert.throws(() => packer.add([Buffer.alloc(10)], 11), /not the 11 stated/);
    s3.close();
    await db.release();

    const store = openStore(sameAddr(where.addr));
    try {
      for (const [i, b] of blobs.entries()) {
        assert.deepEqual(digests[i], blake3(b), `digest of blob ${i}`);
        const back = await readAll(store.blobs, digests[i]);
        assert.ok(back?.equals(b), `blob ${i} (${b.length} bytes) reads back`);
      }
    } finally {
      await store.close();
    }
  });

  it('a pack without a blob indexed meanwhile, and the same bytes put twice at once, read back', async () => {
    const first = openStore(sameAddr(where.addr));
    const second = openStore(sameAddr(where.addr));
    try {
      const [x, y, z] = [seededBytes(3000, 101), seededBytes(5000, 102), seededBytes(7000, 103)];
      await putBytes(first.blobs, x);
      // The second store's pack holds y, x and z (and y again); its upload finds x indexed and sends y and z only.
      const got = await Promise.all([y, x, z, y].map((b) => putBytes(second.blobs, b)));
      assert.deepEqual(got, [y, x, z, y].map((b) => blake3(b)));
      const index = openPgIndex(parseS3Addr(where.addr).indexUrl);
      try {
        const rows = (await index.query<{ digest: Buffer; object: string; offset: string; length: string }>('SELECT digest, object, "offset", length FROM blobs WHERE digest = ANY($1)', [[x, y, z].map((b) => blake3(b))])).rows;
        const at = new Map(rows.map((r) => [r.digest.toString('hex'), r]));
        const [rx, ry, rz] = [x, y, z].map((b) => at.get(blake3(b).toString('hex'))!);
        assert.equal(rows.length, 3, 'one index row each');
        assert.notEqual(rx.object, ry.object, 'x stays where the first store put it');
        assert.equal(ry.object, rz.object, 'y and z went in one pack');
        assert.deepEqual([Number(ry.offset), Number(rz.offset)], [0, y.length], 'x was left out of that pack');
      } finally {
        await index.release();
      }
      for (const b of [x, y, z]) assert.ok((await readAll(second.blobs, blake3(b)))?.equals(b));
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  it('a pack whose PUT is refused fails its blobs, indexes nothing, and the same blobs put again are stored', async () => {
    const loc = parseS3Addr(where.addr);
    const proxy = await packRefusingProxy(loc.endpoint!);
    const s3 = new S3Objects({ ...loc, endpoint: proxy.endpoint });
    const db = openPgIndex(loc.indexUrl);
    const packer = new Packer(s3, db, SMALL_MAX);
    try {
      const blobs = [seededBytes(4000, 201), seededBytes(9000, 202), seededBytes(30_000, 203)];
      const first = blobs.map((b) => packer.add([b], b.length));
      const outcomes = await Promise.allSettled(first.map((a) => a.done));
      assert.ok(proxy.refuse.refused >= 1, 'the pack was sent and refused');
      for (const o of outcomes) {
        assert.equal(o.status, 'rejected');
        assert.match(String((o as PromiseRejectedResult).reason), /denied|refused|403/i);
      }
      const rows = await db.query('SELECT 1 FROM blobs WHERE digest = ANY($1)', [first.map((a) => a.digest)]);
      assert.equal(rows.rowCount, 0, 'nothing indexed for the refused pack');

      // The same bytes again, once S3 takes packs: a new pack, not the failed one's promise.
      proxy.refuse.packs = false;
      const again = blobs.map((b) => packer.add([b], b.length));
      await Promise.all(again.map((a) => a.done));
      await packer.flush();
      assert.deepEqual(again.map((a) => a.digest), blobs.map((b) => blake3(b)));
    } finally {
      s3.close();
      await db.release();
      await proxy.close();
    }
    const store = openStore(sameAddr(where.addr));
    try {
      for (const b of [seededBytes(4000, 201), seededBytes(9000, 202), seededBytes(30_000, 203)]) assert.ok((await readAll(store.blobs, blake3(b)))?.equals(b), `${b.length} bytes read back`);
    } finally {
      await store.close();
    }
  });
});

it("a pack's index rows go to PostgreSQL as array literals: numbers, NULLs and codec words, nothing that needs quoting", async () => {
  const { arrayLiteral } = await import('../../src/scaleout/packer.js');
  assert.equal(arrayLiteral([0, 4096, 12_345_678_901]), '{0,4096,12345678901}');
  assert.equal(arrayLiteral(['zstd', null, 'zstd']), '{zstd,NULL,zstd}');
  assert.equal(arrayLiteral([]), '{}');
  assert.throws(() => arrayLiteral(['a,b']), /plain word/);
  assert.throws(() => arrayLiteral(['"x"']), /plain word/);
  assert.throws(() => arrayLiteral(['NULL ']), /plain word/);
  assert.throws(() => arrayLiteral(['null']), /plain word/, "PostgreSQL would read it as a null");
});
