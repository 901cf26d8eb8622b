// The sniff that spares zstd the formats it cannot shrink
// (src/scaleout/precompressed.ts), on real encoders' output.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync, deflateSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { looksCompressed } from '../../src/scaleout/precompressed.js';
import { MIN_TRIED, worthTrying } from '../../src/scaleout/blob-codec.js';
import { zstdCompress } from '../../src/nix/zstd-native.js';

const text = Buffer.from('a line of text that compresses well\n'.repeat(200));

it('knows gzip, zstd, xz and bzip2 by their first bytes', async () => {
  assert.ok(looksCompressed(gzipSync(text)), 'gzip');
  assert.ok(looksCompressed(await zstdCompress(text, 1)), 'zstd');
  // Debian's xz and bzip2 where installed (xz-utils is on every Debian; bzip2 need not be).
  for (const tool of ['xz', 'bzip2']) {
    let out: Buffer;
    try {
      out = execFileSync(tool, ['-c'], { input: text });
    } catch {
      continue;
    }
    assert.ok(looksCompressed(out), tool);
  }
  assert.ok(looksCompressed(Buffer.from('BZh91AY&SY')), 'a bzip2 header');
  assert.ok(looksCompressed(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04])), 'an xz header');
});

it('leaves text, executables, zlib streams and zip archives to be tried', () => {
  assert.equal(looksCompressed(text), false);
  assert.equal(looksCompressed(readFileSync(process.execPath).subarray(0, 4096)), false, 'an ELF file');
  assert.equal(looksCompressed(deflateSync(text)), false, 'a zlib stream has no reliable magic');
  assert.equal(looksCompressed(Buffer.from('PK\x03\x04stored entries')), false, 'zip entries may be stored raw');
  assert.equal(looksCompressed(Buffer.from([0x1f])), false, 'shorter than any magic');
  assert.equal(looksCompressed(Buffer.alloc(0)), false);
});

it('tries only blobs long enough and not compressed already', () => {
  assert.equal(worthTrying(text), true);
  assert.equal(worthTrying(gzipSync(text)), false);
  assert.equal(worthTrying(text.subarray(0, MIN_TRIED - 1)), false, 'below MIN_TRIED');
  assert.equal(worthTrying(text.subarray(0, MIN_TRIED)), true);
});
