// The LZMA2 dictionary an .xz file asks for, read before decoding (what an
// upload's decoder will hold), for files made by xz(1) itself.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { xzDictionaryBytes, xzHeadNeeded } from '../../src/nix/xz-header.js';

const MiB = 1 << 20;

function xz(args: string[], input: Buffer): Buffer {
  const r = spawnSync('xz', ['-c', ...args], { input, maxBuffer: 64 * MiB });
  assert.equal(r.status, 0, r.stderr?.toString());
  return r.stdout;
}

/** What the parser answers when given the file a byte at a time, as an upload might arrive. */
function dictionaryOf(file: Buffer): number | undefined {
  let n = 1;
  while (n < file.length && n < xzHeadNeeded(file.subarray(0, n))) n++;
  return xzDictionaryBytes(file.subarray(0, n));
}

it('reads the dictionary xz(1) chose: presets, an explicit size, several filters, multithreaded blocks', () => {
  const data = Buffer.alloc(300_000, 'nix-castore ');
  assert.equal(dictionaryOf(xz(['-0'], data)), 256 << 10);
  assert.equal(dictionaryOf(xz(['-6'], data)), 8 * MiB);
  assert.equal(dictionaryOf(xz(['-9'], data)), 64 * MiB);
  assert.equal(dictionaryOf(xz(['--lzma2=preset=1,dict=192MiB'], data)), 192 * MiB);
  assert.equal(dictionaryOf(xz(['--lzma2=preset=1,dict=3MiB'], data)), 3 * MiB);
  assert.equal(dictionaryOf(xz(['--x86', '--lzma2=preset=6'], data)), 8 * MiB);
  assert.equal(dictionaryOf(xz(['-T2', '--block-size=65536', '-6'], data)), 8 * MiB);
});

it('an empty stream has no block; what is not .xz is left to the decoder', () => {
  assert.equal(dictionaryOf(xz([], Buffer.alloc(0))), 0);
  assert.equal(xzDictionaryBytes(Buffer.from('nix-archive-1 is not xz')), undefined);
  assert.equal(xzDictionaryBytes(Buffer.alloc(0)), undefined);
  const truncated = xz(['-6'], Buffer.alloc(1000, 1)).subarray(0, 14);
  assert.equal(xzDictionaryBytes(truncated), undefined);
});
