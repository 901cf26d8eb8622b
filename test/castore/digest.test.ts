// Blake3Stream gathers small updates before hashing them: the digest must
// be the same whatever the pieces, and the same as one call on the whole.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Blake3Stream, EMPTY_BLOB_DIGEST, blake3 } from '../../src/castore/digest.js';

it('Blake3Stream: the digest of the whole, however the bytes are cut', () => {
  const data = Buffer.alloc(700_000);
  for (let i = 0; i + 4 <= data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  const want = blake3(data);
  const cuts: number[][] = [
    [data.length],
    [1, 13_312, 65_536, 65_535, 1, 200_000, 7],
    Array.from({ length: 60 }, (_, i) => 13_312 + (i % 3)),
    [64 * 1024 - 1, 2, 64 * 1024, 64 * 1024 + 1],
  ];
  for (const sizes of cuts) {
    const h = new Blake3Stream();
    let off = 0;
    for (let i = 0; off < data.length; i++) {
      const n = sizes[i % sizes.length];
      h.update(data.subarray(off, off + n));
      off += n;
    }
    assert.deepEqual(h.digest(), want, `pieces of ${sizes.slice(0, 4).join(', ')}…`);
  }
  assert.deepEqual(new Blake3Stream().digest(), EMPTY_BLOB_DIGEST);
  assert.deepEqual(new Blake3Stream().update(Buffer.from('abc')).digest(), blake3(Buffer.from('abc')));
});
