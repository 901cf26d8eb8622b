// The codecs against Debian's zstd, xz and bzip2: what we compress they
// decompress to the same bytes (zstd as concatenated frames), what they
// compress we decompress, in chunks of any size; cut or corrupted input is
// a CompressionError.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { compress, decompress, compressorBytes, CompressionError, checkLevel } from '../../src/nix/compression.js';

// 3 MiB: a compressible half and a pseudo-random half (several zstd frames).
const DATA = Buffer.concat([
  Buffer.from('nix-castore compression test line\n'.repeat(45_000)),
  createCipheriv('aes-256-ctr', Buffer.alloc(32, 1), Buffer.alloc(16)).update(Buffer.alloc(1_500_000)),
]);

async function* inChunks(b: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < b.length; o += size) yield b.subarray(o, o + size);
}
async function all(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}
const cli = (cmd: string, args: string[], input: Buffer) => execFileSync(cmd, args, { input, maxBuffer: 1 << 28 });

describe('compress', () => {
  it('zstd: the level is used (the package wrapper dropped it: every level compressed alike)', async () => {
    const text = Buffer.from(Array.from({ length: 60_000 }, (_, i) => `line ${i} value ${(i * 7919) % 10007}\n`).join(''));
    const fast = await all(compress(inChunks(text, 100_000), 'zstd', 1));
    const small = await all(compress(inChunks(text, 100_000), 'zstd', 19));
    assert.ok(small.length < fast.length * 0.9, `level 19: ${small.length} bytes, level 1: ${fast.length}`);
    assert.ok(cli('zstd', ['-d', '-c'], small).equals(text));
  });
  for (const [kind, tool] of [['zstd', 'zstd'], ['xz', 'xz']] as const) {
    it(`${kind}: ${tool} -d gives the input back`, async () => {
      const out = await all(compress(inChunks(DATA, 100_000), kind));
      assert.ok(out.length < DATA.length);
      assert.ok(cli(tool, ['-d', '-c'], out).equals(DATA));
    });
  }
  it('zstd: an empty input is a valid (empty) zstd file', async () => {
    const out = await all(compress(inChunks(Buffer.alloc(0), 1), 'zstd'));
    assert.equal(cli('zstd', ['-d', '-c'], out).length, 0);
  });
  it("a compressor's memory as the daemon's budget counts it: zstd's frames, xz's encoder by level (the largest for a level outside the table)", () => {
    const MiB = 2 ** 20;
    assert.equal(compressorBytes('zstd', 3), 7 * MiB);
    assert.equal(compressorBytes('xz', 2), 17 * MiB);
    assert.equal(compressorBytes('xz', 9), 674 * MiB);
    assert.equal(compressorBytes('xz', 12), 674 * MiB);
    assert.equal(compressorBytes('none', 0), 0);
  });

  it('levels out of range are refused', () => {
    assert.throws(() => checkLevel('zstd', 0), CompressionError);
    assert.throws(() => checkLevel('xz', 10), CompressionError);
    checkLevel('zstd', 19);
  });
});

describe('decompress', () => {
  for (const [kind, tool, level] of [['zstd', 'zstd', '-3'], ['xz', 'xz', '-1'], ['bzip2', 'bzip2', '-1']] as const) {
    it(`${kind}: what ${tool} wrote, in chunks of any size`, async () => {
      const file = cli(tool, ['-c', level], DATA);
      for (const size of [1000, 65536, file.length]) {
        assert.ok((await all(decompress(inChunks(file, size), kind))).equals(DATA), `chunks of ${size}`);
      }
    });
    it(`${kind}: a cut file is a CompressionError`, async () => {
      const file = cli(tool, ['-c', level], DATA);
      await assert.rejects(all(decompress(inChunks(file.subarray(0, file.length - 100), 65536), kind)), CompressionError);
    });
  }
  it('xz: corrupted bytes are a CompressionError (its check catches them)', async () => {
    const file = cli('xz', ['-c', '-1'], DATA);
    file[file.length >> 1] ^= 0xff;
    await assert.rejects(all(decompress(inChunks(file, 65536), 'xz')), CompressionError);
  });
  it('zstd: corrupted bytes are a CompressionError, at once (zstddec\'s own stream decoder looped for good on them)', async () => {
    const file = cli('zstd', ['-c', '-3'], DATA);
    for (const at of [20, file.length >> 2, file.length >> 1]) {
      const bad = Buffer.from(file);
      for (let i = 0; i < 64; i++) bad[at + i] ^= 0x5a;
      await assert.rejects(all(decompress(inChunks(bad, 65536), 'zstd')), (err: Error) => err instanceof CompressionError && /malformed zstd data: libzstd error/.test(err.message), `damage at ${at}`);
    }
  });
  it('zstd: our own frames end to end, a skippable frame among them, and a cut inside a later frame', async () => {
    const ours = await all(compress(inChunks(DATA, 100_000), 'zstd'));
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0]), Buffer.from('skip')]);
    const file = Buffer.concat([skippable, ours]);
    for (const size of [7, 65536, file.length]) {
      assert.ok((await all(decompress(inChunks(file, size), 'zstd'))).equals(DATA), `chunks of ${size}`);
    }
    await assert.rejects(all(decompress(inChunks(file.subarray(0, file.length - 10), 65536), 'zstd')), /ends inside a frame/);
  });
  it('zstd: a frame asking for a window over libzstd\'s 128 MiB limit is refused before anything is allocated for it', async () => {
    // magic, descriptor (no checksum, no content size, not single-segment), window descriptor 2^(10+18) = 256 MiB.
    const head = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 18 << 3, 0x01, 0x00, 0x00]);
    await assert.rejects(all(decompress(inChunks(head, 65536), 'zstd')), /frame asks for too large a window/);
  });
  it('not compressed at all: a CompressionError', async () => {
    for (const kind of ['zstd', 'xz', 'bzip2'] as const) {
      await assert.rejects(all(decompress(inChunks(Buffer.from('nix-archive-1 but not compressed'), 8), kind)), CompressionError, kind);
    }
  });
});
