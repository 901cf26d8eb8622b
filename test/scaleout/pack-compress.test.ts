// A pack's body is laid out in the pack's own buffer (no fresh ~8 MiB body
// per pack from malloc), and every entry still reads back: compressed and
// raw entries mixed, some of the buffer's blobs skipped (already indexed).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { packRows, type PackEntry } from '../../src/scaleout/pack-compress.js';
import { inflateWhole, type Location } from '../../src/scaleout/blob-codec.js';
import { blake3 } from '../../src/castore/digest.js';
import { Rng } from '../helpers/seeded-random.js';

it("a pack's body is laid out in its buffer, and each entry reads back", async () => {
  const rng = new Rng(3);
  // Compressible (repeated) and incompressible (random) blobs, small and large.
  const blobs = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? rng.bytes(200 + i * 997) : Buffer.alloc(300 + i * 1013, `blob ${i} `)));
  const buf = Buffer.alloc(blobs.reduce((a, b) => a + b.length, 0) + 100);
  const all: PackEntry[] = [];
  let size = 0;
  for (const b of blobs) {
    b.copy(buf, size);
    all.push({ digest: blake3(b), offset: size, length: b.length });
    size += b.length;
  }
  // Every fifth blob is indexed already: it is left out of the body.
  const todo = all.filter((_, i) => i % 5 !== 4);
  const rows = await packRows(buf, size, todo, false, { level: 1 });
  assert.equal(rows.body.buffer, buf.buffer, 'the body is the pack buffer');
  assert.equal(rows.body.byteOffset, buf.byteOffset);
  assert.ok(rows.codecs.includes('zstd') && rows.codecs.includes(null), 'raw and compressed entries mixed');
  assert.ok(rows.body.length < size);
  for (let k = 0; k < todo.length; k++) {
    const loc: Location = { object: 'packs/x', offset: rows.offsets[k], length: rows.lengths[k] };
    if (rows.codecs[k]) Object.assign(loc, { codec: rows.codecs[k], stored: rows.stored[k] });
    const n = rows.stored[k] ?? rows.lengths[k];
    const got = await inflateWhole(todo[k].digest, loc, [Buffer.from(rows.body.subarray(rows.offsets[k], rows.offsets[k] + n))]);
    assert.ok(Buffer.concat(got).equals(blobs[all.indexOf(todo[k])]), `entry ${k}`);
  }
});
