// zstd decoding into the size the index states (zstd-exact.ts): honest
// frames decode, and a frame that would decode to more — a 32 KiB "bomb"
// of RLE blocks standing for 1 GiB — is refused without that memory ever
// being allocated (libzstd stops at the output's end).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { zstdDecompressExact } from '../../src/nix/zstd-exact.js';
import { zstdCompress } from '../../src/nix/zstd-native.js';

/** One zstd frame of `blocks` RLE blocks of 128 KiB each (RFC 8878): 4 bytes each, 128 KiB out each. */
function rleBomb(blocks: number): Buffer {
  const head = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]); // magic, no content size, 128 KiB window
  const body = Buffer.alloc(blocks * 4);
  for (let i = 0; i < blocks; i++) {
    const h = (i === blocks - 1 ? 1 : 0) | (1 << 1) | ((128 << 10) << 3);
    body.writeUIntLE(h, i * 4, 3);
    body[i * 4 + 3] = 0x41;
  }
  return Buffer.concat([head, body]);
}

describe('zstd decoding to an exact size', () => {
  it('decodes honest frames, one or several end to end', async () => {
    const a = randomBytes(5000);
    const b = Buffer.alloc(300_000, 'nix');
    const za = await zstdCompress(a, 1);
    const zb = await zstdCompress(b, 3);
    assert.deepEqual(await zstdDecompressExact(za, a.length), a);
    assert.deepEqual(await zstdDecompressExact(Buffer.concat([za, zb]), a.length + b.length), Buffer.concat([a, b]));
  });

  it('refuses frames that decode to fewer or more bytes than stated, or are damaged', async () => {
    const b = Buffer.alloc(300_000, 'nix');
    const zb = await zstdCompress(b, 1);
    await assert.rejects(zstdDecompressExact(zb, b.length + 1), /decode to 300000 bytes, 300001 expected/);
    await assert.rejects(zstdDecompressExact(zb, b.length - 1), /corrupt or decode to more than the 299999 bytes expected/);
    await assert.rejects(zstdDecompressExact(zb.subarray(0, zb.length - 3), b.length), /zstd:/);
    await assert.rejects(zstdDecompressExact(Buffer.from('not zstd at all'), 10), /corrupt/);
  });

  it('a bomb of 1 GiB in 32 KiB is refused without allocating its output', async () => {
    const bomb = rleBomb(8192);
    assert.equal(bomb.length, 6 + 8192 * 4);
    // The bomb itself is a valid frame: a small one decodes to exactly its RLE bytes.
    assert.deepEqual(await zstdDecompressExact(rleBomb(2), 256 << 10), Buffer.alloc(256 << 10, 0x41));
    const before = process.memoryUsage().rss;
    await assert.rejects(zstdDecompressExact(bomb, 100_000), /corrupt or decode to more than the 100000 bytes expected/);
    assert.ok(process.memoryUsage().rss - before < 256 << 20, 'no GiB-sized allocation');
  });
});
