// The codecs against Debian's zstd, xz and bzip2: what we compress they
// decompress to the same bytes (zstd as concatenated frames), what they
// compress we decompress, in chunks of any size; cut or corrupted input is
// a CompressionError.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { compress, decompress, CompressionError, checkLevel } from '../../src/nix/compression.js';

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
  it('not compressed at all: a CompressionError', async () => {
    for (const kind of ['zstd', 'xz', 'bzip2'] as const) {
      await assert.rejects(all(decompress(inChunks(Buffer.from('nix-archive-1 but not compressed'), 8), kind)), CompressionError, kind);
    }
  });
});
