// The threads that decode and check stored blobs (inflate-pool.ts): units
// decode on threads, not on the caller's; each piece is checked; a thread
// that dies fails its jobs with a clear error and the next job gets a new
// one; an input whose bytes a raw unit handed out is never reused.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { threadId } from 'node:worker_threads';
import { blake3 } from '../../src/castore/digest.js';
import { zstdCompress } from '../../src/nix/zstd-native.js';
import { inflateCounts, inflatePool, type UnitResult } from '../../src/scaleout/inflate-pool.js';

function bytesOf(r: UnitResult): Uint8Array {
  if (!('bytes' in r)) throw new Error(`unit failed: ${r.error}`);
  return r.bytes;
}

describe('the inflating threads', () => {
  it('decode zstd units on threads of their own and check every piece', async () => {
    const a = Buffer.alloc(300_000, 'nix-castore');
    const b = randomBytes(70_000);
    const z = Buffer.concat([await zstdCompress(a, 1), await zstdCompress(b, 1)]);
    const r = await inflatePool.run([z.subarray(0, 1000), z.subarray(1000)], { raw: a.length + b.length, compressed: true, lengths: [a.length, b.length], checks: [blake3(a), blake3(b).subarray(0, 8)] });
    assert.ok(Buffer.from(bytesOf(r)).equals(Buffer.concat([a, b])));
    // Decoded on a thread (this test runs on the main one).
    assert.equal(threadId, 0);
    assert.ok(inflateCounts.threadsStarted >= 1, 'a thread was started');

    // A piece whose bytes do not hash to its check: which one is said.
    const bad = await inflatePool.run([z], { raw: a.length + b.length, compressed: true, lengths: [a.length, b.length], checks: [blake3(a), blake3(a)] });
    assert.deepEqual(bad, { error: 'mismatch', piece: 1 });
    // Frames that decode to another size than stated: the decoder's error, nothing allocated beyond the size.
    const short = await inflatePool.run([z], { raw: a.length, compressed: true, lengths: [a.length], checks: [blake3(a)] });
    assert.match('error' in short ? short.error : '', /decode to more than the 300000 bytes expected/);
    const garbage = await inflatePool.run([Buffer.from('not zstd at all')], { raw: 10, compressed: true, lengths: [10], checks: [blake3(a)] });
    assert.ok('error' in garbage && /corrupt/.test(garbage.error));
  });

  it('never reuses an input whose bytes a raw unit handed out', async () => {
    const raw = randomBytes(100_000);
    const kept = await inflatePool.run([raw], { raw: raw.length, compressed: false, lengths: [raw.length], checks: [blake3(raw)] });
    const held = bytesOf(kept);
    // Many more jobs of the same size class, each writing other bytes into its input.
    const other = Buffer.alloc(100_000, 0x5a);
    const z = await zstdCompress(other, 1);
    for (let i = 0; i < 20; i++) {
      await Promise.all([
        inflatePool.run([other], { raw: other.length, compressed: false, lengths: [other.length], checks: [blake3(other)] }),
        inflatePool.run([z, other.subarray(0, 90_000)], { raw: other.length, compressed: true, lengths: [other.length], checks: [blake3(other)] }),
      ]);
    }
    assert.ok(Buffer.from(held).equals(raw), 'the raw unit handed out keeps its bytes');
  });

  it('fails the jobs of a thread that dies, clearly, and starts a new one for the next', async () => {
    const big = Buffer.alloc(64 << 20, 'castore');
    const z = await zstdCompress(big, 1);
    const unit = { raw: big.length, compressed: true, lengths: [big.length], checks: [blake3(big)] };
    const failed = assert.rejects(
      Promise.all([inflatePool.run([z], unit), inflatePool.run([z], unit), inflatePool.run([z], unit)]),
      /the thread decoding stored blobs exited \(code \d+\); try again/,
    );
    await inflatePool.terminateAll();
    await failed;
    const started = inflateCounts.threadsStarted;
    const r = await inflatePool.run([z], unit);
    assert.ok(Buffer.from(bytesOf(r)).equals(big));
    assert.ok(inflateCounts.threadsStarted > started, 'a new thread was started');
  });
});
