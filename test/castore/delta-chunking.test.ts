// Content-defined chunks and hooks (src/castore/delta/chunking.ts): cut
// alike however the bytes arrive, bounded, and surviving the changes a
// rebuilt file has (appends, insertions, a few changed bytes).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Chunker, chunksOf, HookFinder, CHUNK_MIN, CHUNK_MAX, HOOK_REGION, HOOK_BYTES, type Chunk } from '../../src/castore/delta/chunking.js';
import { blake3 } from '../../src/castore/digest.js';
import { seededRandom, fuzzSeed } from '../helpers/seeded-random.js';

const seed = fuzzSeed();
const rng = seededRandom(seed);
const MiB = 1 << 20;

function hooksOf(bytes: Buffer, pieces?: () => number): Buffer[] {
  const f = new HookFinder(bytes.length);
  if (!pieces) {
    // As a client reads: only where the finder asks.
    while (f.next() < bytes.length) {
      const at = f.next();
      f.push(bytes.subarray(at, Math.min(bytes.length, at + 65536)), at);
    }
  } else {
    // As a server's writer sees a stream.
    for (let at = 0; at < bytes.length; ) {
      const n = Math.min(bytes.length - at, pieces());
      if (f.next() < at + n) f.push(bytes.subarray(at, at + n), at);
      at += n;
    }
  }
  return f.hooks;
}

/** Bytes of `b`'s chunks that `a` has too. */
function shared(a: Chunk[], b: Chunk[]): number {
  const known = new Set(a.map((c) => c.digest.toString('hex')));
  return b.filter((c) => known.has(c.digest.toString('hex'))).reduce((n, c) => n + c.length, 0);
}

describe(`content-defined chunks (seed ${seed})`, () => {
  const data = rng.bytes(6 * MiB + 12345);

  it('are the same whatever pieces the bytes come in, cover them, and respect the bounds', () => {
    const whole = chunksOf(data);
    const c = new Chunker();
    for (let at = 0; at < data.length; ) {
      const n = Math.min(data.length - at, 1 + rng.int(300_000));
      c.push(data.subarray(at, at + n));
      at += n;
    }
    assert.deepEqual(c.end(), whole);
    let at = 0;
    whole.forEach((ch, i) => {
      assert.ok(ch.length <= CHUNK_MAX, `chunk ${i}: ${ch.length} bytes`);
      if (i < whole.length - 1) assert.ok(ch.length >= CHUNK_MIN, `chunk ${i}: ${ch.length} bytes`);
      assert.deepEqual(ch.digest, blake3(data.subarray(at, at + ch.length)));
      at += ch.length;
    });
    assert.equal(at, data.length);
    assert.ok(whole.length > 20 && whole.length < 6 * MiB / CHUNK_MIN, `${whole.length} chunks`);
  });

  it('survive an insertion and changed bytes: only the chunks around them differ', () => {
    const changed = Buffer.concat([data.subarray(0, 2_500_000), Buffer.from('inserted '.repeat(20)), data.subarray(2_500_000)]);
    changed.fill(7, 5_000_000, 5_000_010);
    const before = chunksOf(data);
    const after = chunksOf(changed);
    const kept = shared(before, after);
    // Two changes touch at most two chunks each (≤ 4 × 256 KiB).
    assert.ok(changed.length - kept <= 4 * CHUNK_MAX, `${changed.length - kept} bytes in new chunks`);
  });

  it('an all-zero blob is cut at the maximum', () => {
    const zeros = chunksOf(Buffer.alloc(CHUNK_MAX * 3 + 5));
    assert.deepEqual(zeros.map((c) => c.length), [CHUNK_MAX, CHUNK_MAX, CHUNK_MAX, 5]);
  });
});

describe(`hooks (seed ${seed})`, () => {
  const data = rng.bytes(9 * MiB + 777);

  it('one per region, the same read positionally or streamed in any pieces', () => {
    const read = hooksOf(data);
    assert.equal(read.length, Math.ceil(data.length / HOOK_REGION));
    assert.deepEqual(hooksOf(data, () => 1 + rng.int(3 * MiB)), read);
    assert.deepEqual(hooksOf(data, () => 1 << 20), read);
  });

  it('an appended file keeps every hook; an insertion keeps those it does not touch', () => {
    const before = hooksOf(data).map((h) => h.toString('hex'));
    const appended = hooksOf(Buffer.concat([data, Buffer.from('changed 20\n')])).map((h) => h.toString('hex'));
    assert.deepEqual(appended.slice(0, before.length), before);
    const inserted = hooksOf(Buffer.concat([data.subarray(0, 3 * MiB), Buffer.alloc(100, 1), data.subarray(3 * MiB)])).map((h) => h.toString('hex'));
    const kept = inserted.filter((h) => before.includes(h)).length;
    assert.ok(kept >= before.length - 2, `${kept} of ${before.length} hooks kept`);
  });

  it('none where a hook would not fit, and none in bytes without anchors', () => {
    assert.deepEqual(hooksOf(data.subarray(0, HOOK_BYTES)), []);
    assert.deepEqual(hooksOf(Buffer.alloc(3 * MiB)), []);
  });
});
