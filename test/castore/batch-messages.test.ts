// nixcastore.v1.BlobBatchService messages: our hand-written codecs against
// protobufjs reading protos/nixcastore/v1/blob_batch.proto, both ways, and
// the forms a parser must accept (packed and unpacked repeated bools).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import * as B from '../../src/castore/batch-messages.js';
import { blake3 } from '../../src/castore/digest.js';
import { ProtoDecodeError } from '../../src/proto/reader.js';

const PROTO = fileURLToPath(new URL('../../../protos/nixcastore/v1/blob_batch.proto', import.meta.url));
const root = protobuf.loadSync(PROTO);
const type = (name: string) => root.lookupType(`nixcastore.v1.${name}`);
const viaProtobufjs = (name: string, obj: object): Buffer => Buffer.from(type(name).encode(type(name).fromObject(obj)).finish());
const readByProtobufjs = (name: string, buf: Buffer) => type(name).toObject(type(name).decode(buf), { longs: Number, defaults: true, arrays: true });

const blobs = [Buffer.from('hello'), Buffer.alloc(0), Buffer.alloc(300_000, 7)].map((data) => ({ digest: blake3(data), data }));

describe('BlobBatchService messages', () => {
  it('HasBlobsRequest: same bytes as protobufjs, read back either way', () => {
    const digests = blobs.map((b) => b.digest);
    const ours = B.HasBlobsRequestCodec.encode({ digests });
    assert.deepEqual(ours, viaProtobufjs('HasBlobsRequest', { digests }));
    assert.deepEqual(B.HasBlobsRequestCodec.decode(ours).digests.map((d) => Buffer.from(d)), digests);
    assert.deepEqual(B.HasBlobsRequestCodec.encode({ digests: [] }), Buffer.alloc(0));
  });

  it('putBlobsParts: the bytes of PutBlobsRequestCodec, large blobs as themselves and not copied', () => {
    const sizes = [[], [0], [5], [4095, 4096], [300_000, 0, 17, 5000, 1, 70_000], [8192, 8192]];
    for (const set of sizes) {
      const m = { blobs: set.map((n, i) => Buffer.alloc(n, i + 1)).map((data) => ({ digest: blake3(data), data })) };
      const parts = B.putBlobsParts(m);
      assert.deepEqual(Buffer.concat(parts), B.PutBlobsRequestCodec.encode(m), `sizes ${set}`);
      for (const b of m.blobs) assert.equal(parts.includes(b.data), b.data.length >= 4096, `sizes ${set}: a blob of ${b.data.length} bytes`);
      assert.ok(parts.every((p) => p.length > 0) || (parts.length === 1 && set.length === 0), `sizes ${set}: no empty writes`);
    }
  });

  it('HasBlobsResponse: packed bools and the size limit, as protobufjs writes them', () => {
    const m = { present: [true, false, false, true], maxPutBytes: 4 << 20 };
    const ours = B.HasBlobsResponseCodec.encode(m);
    assert.deepEqual(ours, viaProtobufjs('HasBlobsResponse', m));
    assert.deepEqual(B.HasBlobsResponseCodec.decode(ours), m);
    assert.deepEqual(readByProtobufjs('HasBlobsResponse', ours), m);
    assert.deepEqual(B.HasBlobsResponseCodec.decode(Buffer.alloc(0)), { present: [], maxPutBytes: 0 });
  });

  it('HasBlobsResponse: unpacked bools (one field each) read the same', () => {
    const unpacked = Buffer.from([0x08, 1, 0x08, 0, 0x08, 1]);
    assert.deepEqual(B.HasBlobsResponseCodec.decode(unpacked).present, [true, false, true]);
    // Both forms in one message concatenate.
    const mixed = Buffer.concat([Buffer.from([0x0a, 2, 1, 0]), unpacked]);
    assert.deepEqual(B.HasBlobsResponseCodec.decode(mixed).present, [true, false, true, false, true]);
    assert.throws(() => B.HasBlobsResponseCodec.decode(Buffer.from([0x0a, 1, 0x80])), ProtoDecodeError);
  });

  it('PutBlobsRequest: protobufjs reads ours, we read protobufjs\', megabytes in one buffer', () => {
    const ours = B.PutBlobsRequestCodec.encode({ blobs });
    const back = readByProtobufjs('PutBlobsRequest', ours) as { blobs: { digest: Uint8Array; data: Uint8Array }[] };
    assert.deepEqual(back.blobs.map((b) => [Buffer.from(b.digest), Buffer.from(b.data)]), blobs.map((b) => [b.digest, b.data]));
    const theirs = viaProtobufjs('PutBlobsRequest', { blobs });
    const decoded = B.PutBlobsRequestCodec.decode(theirs).blobs;
    assert.deepEqual(decoded.map((b) => [Buffer.from(b.digest), Buffer.from(b.data)]), blobs.map((b) => [b.digest, b.data]));
    // Exactly sized: nothing after the last blob.
    assert.equal(B.PutBlobsRequestCodec.decode(ours).blobs.length, 3);
    assert.deepEqual(B.PutBlobsResponseCodec.encode({}), Buffer.alloc(0));
  });
});
