// Which GETs the S3 store's readMany sends for a set of located blobs
// (pure planning: no S3 needed). Small neighbours a little apart in the
// same pack come in one GET: a gap of up to 64 KiB is read through even
// where the blobs around it are smaller than it, since a GET costs RGW
// and both ends more than that many bytes.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { runsOf } from '../../src/scaleout/s3-reads.js';

const located = (spots: [string, number, number][]) => spots.map(([object, offset, length], i) => ({ i, loc: { object, offset, length } }));

it('tiny blobs up to 64 KiB apart in a pack are one GET; further apart, or in another pack, are not', () => {
  // 20 blobs of 100 bytes, 40 KiB apart: 20 GETs when a gap could be no larger than the blobs around it.
  const near = located(Array.from({ length: 20 }, (_, k) => ['packs/a', k * (40 << 10), 100] as [string, number, number]));
  const runs = runsOf(near);
  assert.equal(runs.length, 1);
  assert.deepEqual([runs[0].start, runs[0].end], [0, 19 * (40 << 10) + 100]);
  assert.equal(runs[0].members.length, 20);

  const far = located([['packs/a', 0, 100], ['packs/a', 100 + (64 << 10) + 1, 100], ['packs/b', 200, 100]]);
  assert.equal(runsOf(far).length, 3, 'a gap beyond 64 KiB after 100 wanted bytes, and another pack, are GETs of their own');
});

it('wasted bytes stay bounded: a gap beyond 64 KiB is read through only when at most the bytes wanted so far (and 256 KiB)', () => {
  const big = located([['packs/a', 0, 200 << 10], ['packs/a', (200 << 10) + (150 << 10), 10]]);
  assert.equal(runsOf(big).length, 1, '150 KiB gap after 200 KiB wanted');
  const tooFar = located([['packs/a', 0, 1 << 20], ['packs/a', (1 << 20) + (300 << 10), 10]]);
  assert.equal(runsOf(tooFar).length, 2, 'a 300 KiB gap is never read through');
  // No GET longer than 8 MiB.
  const long = located(Array.from({ length: 20 }, (_, k) => ['packs/a', k * (1 << 20), 1 << 20] as [string, number, number]));
  assert.ok(runsOf(long).every((r) => r.end - r.start <= 8 << 20));
});
