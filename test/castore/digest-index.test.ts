// The packs' in-memory index (src/castore/disk/digest-index.ts): what a Map
// of hex digests did (first place kept, lookups by hex or bytes, a pack's
// entries dropped, iteration, totals), through growth, deletions and
// colliding first bytes, in a table that is not the heap's: 200,000 entries
// take 64-128 bytes each outside the heap (a Map of hex strings to
// objects: ~200 bytes each, in it).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DigestIndex } from '../../src/castore/disk/digest-index.js';

const digest = (i: number) => createHash('sha256').update(`blob ${i}`).digest();
const hex = (i: number) => digest(i).toString('hex');

it('keeps the first place of a digest, finds it by hex, and misses what it lacks', () => {
  const idx = new DigestIndex<string>();
  idx.add(hex(1), 'a', 100, 10);
  idx.add(digest(1), 'b', 200, 20); // the same digest, as bytes: ignored
  idx.add(digest(2), 'b', 300, 30);
  assert.equal(idx.size, 2);
  assert.deepEqual(idx.get(hex(1)), { pack: 'a', offset: 100, length: 10 });
  assert.deepEqual(idx.get(hex(2)), { pack: 'b', offset: 300, length: 30 });
  assert.equal(idx.lengthOf(hex(2)), 30);
  assert.equal(idx.has(hex(3)), false);
  assert.equal(idx.get(hex(3)), undefined);
  for (const bad of ['', 'zz', hex(1).slice(0, 63), `${hex(1).slice(0, 62)}zz`]) assert.equal(idx.has(bad), false, bad);
  assert.throws(() => idx.add('not hex', 'a', 0, 1), /not a BLAKE3 digest/);
  assert.throws(() => idx.add(digest(4), 'a', 0, 2 ** 32), /more than a pack record holds/);
});

it('holds 200,000 entries through growth and deletions, as a Map does', () => {
  const idx = new DigestIndex<{ name: string }>();
  const packs = [{ name: 'p0' }, { name: 'p1' }, { name: 'p2' }];
  const want = new Map<string, { pack: { name: string }; offset: number; length: number }>();
  for (let i = 0; i < 200_000; i++) {
    const loc = { pack: packs[i % 3], offset: i * 4096 + 2 ** 33, length: i % 70_000 };
    idx.add(digest(i), loc.pack, loc.offset, loc.length);
    want.set(hex(i), loc);
  }
  assert.ok(idx.bytes / idx.size <= 128, `${(idx.bytes / idx.size).toFixed(0)} bytes per entry`);
  idx.deletePack(packs[1]);
  for (const [h, loc] of want) if (loc.pack === packs[1]) want.delete(h);
  // Re-adding after the deletions reuses their slots and finds no duplicates.
  for (let i = 0; i < 1000; i++) idx.add(digest(i), packs[0], 7, 7);
  for (let i = 0; i < 1000; i++) if (!want.has(hex(i))) want.set(hex(i), { pack: packs[0], offset: 7, length: 7 });
  assert.equal(idx.size, want.size);
  for (const [h, loc] of want) assert.deepEqual(idx.get(h), loc, h);
  const seen = new Map([...idx.entries()]);
  assert.deepEqual(seen, want);
  assert.equal(idx.totalLength(), [...want.values()].reduce((a, l) => a + l.length, 0));
});

it('finds digests whose first bytes collide', () => {
  const idx = new DigestIndex<string>();
  const keys = Array.from({ length: 3000 }, (_, i) => {
    const d = digest(i);
    d.writeUInt32LE(0x1234, 0); // every one hashes to the same slot
    return d;
  });
  keys.forEach((d, i) => idx.add(d, i % 2 ? 'odd' : 'even', i, i));
  idx.deletePack('even');
  keys.forEach((d, i) => assert.deepEqual(idx.get(d.toString('hex')), i % 2 ? { pack: 'odd', offset: i, length: i } : undefined));
});

it('adds next to nothing to the heap', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  const before = process.memoryUsage().heapUsed;
  const idx = new DigestIndex<string>();
  const d = Buffer.alloc(32);
  for (let i = 0; i < 200_000; i++) {
    d.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, 0);
    d.writeUInt32LE(i, 8);
    idx.add(d, 'p', i, 100);
  }
  gc();
  const grew = process.memoryUsage().heapUsed - before;
  assert.equal(idx.size, 200_000);
  assert.ok(grew < 2 << 20, `the heap grew by ${(grew / 1048576).toFixed(1)} MiB for 200,000 entries`);
});
