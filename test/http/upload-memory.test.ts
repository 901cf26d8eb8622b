// What a NAR upload (`nix copy --to http://…`) makes the daemon hold is
// counted against its budget as it grows, not only its fixed share: the
// directories kept until the NAR ends and the decompressor's window or
// dictionary. A few KiB of zstd that stand for gigabytes are decoded as
// they are stored, not gathered first. And a directory too large for one
// Directory message is refused: no client could read it back.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { peakRssKiB } from '../helpers/proc-usage.js';
import { cacheUrlOf, request } from './http-helpers.js';
import { narBytes, narString, type NarEntry, type NarNode } from '../../src/nix/nar.js';

const MiB = 1 << 20;
let small: DaemonProcess;
let smallUrl: string;
let roomy: DaemonProcess;
let roomyUrl: string;

before(async () => {
  // 24 MiB: room for an upload's fixed share and a decoder's ordinary window, not for 128 MiB of it.
  small = await startDaemonProcess({ args: ['--store', 'memory://', '--http', '127.0.0.1:0', '--max-buffered-bytes', '24M'] });
  roomy = await startDaemonProcess({ args: ['--http', '127.0.0.1:0'] });
  [smallUrl, roomyUrl] = await Promise.all([cacheUrlOf(small), cacheUrlOf(roomy)]);
});
after(async () => {
  await small?.stop();
  await roomy?.stop();
});

/** A name for the upload: any 52 nixbase32 characters (the daemon checks the file hash after ingesting). */
const fileName = (c: string) => `/nar/${c.repeat(52)}`;

const put = (url: string, target: string, body: Uint8Array) => request(url, target, 'PUT', { 'Content-Type': 'application/x-nix-nar' }, body);

// zstd frames by hand (RFC 8878): a window as large as asked, raw and RLE blocks.
function frameHeader(windowLog: number): Buffer {
  return Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, (windowLog - 10) << 3]);
}
function blockHeader(size: number, type: 0 | 1, last: boolean): Buffer {
  const v = (size << 3) | (type << 1) | (last ? 1 : 0);
  return Buffer.from([v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff]);
}
function rawBlocks(data: Uint8Array, last: boolean): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += 128 << 10) {
    const piece = data.subarray(at, at + (128 << 10));
    parts.push(blockHeader(piece.length, 0, last && at + piece.length >= data.length), Buffer.from(piece));
  }
  return Buffer.concat(parts);
}
function zeroBlocks(bytes: number): Buffer {
  const parts: Buffer[] = [];
  for (let n = 0; n < bytes; n += 128 << 10) parts.push(blockHeader(Math.min(128 << 10, bytes - n), 1, false), Buffer.from([0]));
  return Buffer.concat(parts);
}

const file = (text: string): NarNode => ({ type: 'regular', executable: false, size: text.length, contents: () => [Buffer.from(text)] });
const dir = (entries: NarEntry[]): NarNode => ({ type: 'directory', entries: async () => entries });
const symlinks = (n: number, targetBytes: number): NarEntry[] =>
  Array.from({ length: n }, (_, i) => ({ name: Buffer.from(`l${String(i).padStart(5, '0')}`), node: { type: 'symlink', target: Buffer.alloc(targetBytes, 0x61 + (i % 26)) } as NarNode }));

it('a zstd frame asking for a 128 MiB window counts it: 503 with Retry-After past the budget, an ordinary one is taken', async () => {
  const nar = await narBytes(file('hello\n'));
  const large = Buffer.concat([frameHeader(27), rawBlocks(nar, true)]);
  const r = await put(smallUrl, `${fileName('1')}.nar.zst`, large);
  assert.equal(r.status, 503, r.body.toString());
  assert.match(r.headers['retry-after'] ?? '', /^\d+$/);
  const ordinary = Buffer.concat([frameHeader(20), rawBlocks(nar, true)]);
  const ok = await put(smallUrl, `${fileName('2')}.nar.zst`, ordinary);
  assert.notEqual(ok.status, 503, ok.body.toString());
  assert.notEqual(ok.status, 500, ok.body.toString());
});

it('an xz dictionary is counted before decoding: 192 MiB gets 503, xz -6 (8 MiB) is taken', async () => {
  const nar = Buffer.from(await narBytes(file('hello\n')));
  const xz = (args: string[]) => spawnSync('xz', ['-c', ...args], { input: nar, maxBuffer: 1 << 20 }).stdout;
  const r = await put(smallUrl, `${fileName('3')}.nar.xz`, xz(['--lzma2=preset=1,dict=192MiB']));
  assert.equal(r.status, 503, r.body.toString());
  const ok = await put(smallUrl, `${fileName('4')}.nar.xz`, xz(['-6']));
  assert.notEqual(ok.status, 503, ok.body.toString());
  assert.notEqual(ok.status, 500, ok.body.toString());
});

it('a few KiB of zstd standing for 256 MiB of zeros are stored as they are decoded, memory flat', async () => {
  const size = 256 * MiB;
  const u64 = Buffer.alloc(8);
  u64.writeUInt32LE(size, 0);
  const head = Buffer.concat([...['nix-archive-1', '(', 'type', 'regular', 'contents'].map((s) => Buffer.from(narString(s))), u64]);
  const tail = Buffer.from(narString(')'));
  const body = Buffer.concat([frameHeader(20), rawBlocks(head, false), zeroBlocks(size), rawBlocks(tail, true)]);
  assert.ok(body.length < 16 << 10, `${body.length} bytes`);
  const before = peakRssKiB(roomy.child.pid!);
  const r = await put(roomyUrl, `${fileName('5')}.nar.zst`, body);
  const grew = (peakRssKiB(roomy.child.pid!) - before) / 1024;
  // Any answer but a 5xx: the file hash does not match the made-up name (400), but the NAR was ingested whole.
  assert.ok(r.status < 500, `${r.status} ${r.body.toString()}`);
  assert.ok(grew < 128, `the daemon's peak RSS grew by ${grew.toFixed(0)} MiB for 256 MiB of decoded zeros`);
});

it('a directory too large for one Directory message is refused with what to do, not stored', async () => {
  // 1,100 symlinks with 4,000-byte targets: ~4.4 MB as one message, over the 4 MiB any gRPC client takes.
  const nar = await narBytes(dir(symlinks(1100, 4000)));
  const r = await put(roomyUrl, `${fileName('6')}.nar`, nar);
  assert.equal(r.status, 400, r.body.toString());
  assert.match(r.body.toString(), /takes \d+ bytes as one Directory message, over the 4194304/);
});

it('the directories an upload holds until its NAR ends count against the budget', async () => {
  // Seven directories of 1,000 symlinks with 4,090-byte targets: each fits one message, together ~29 MB held.
  const tree = dir(['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((n) => ({ name: Buffer.from(n), node: dir(symlinks(1000, 4090)) })));
  const nar = await narBytes(tree);
  const r = await put(smallUrl, `${fileName('7')}.nar`, nar);
  assert.equal(r.status, 503, r.body.toString());
  assert.match(r.body.toString(), /--max-buffered-bytes/);
  // A daemon with the default budget takes it (the made-up file name aside).
  const ok = await put(roomyUrl, `${fileName('8')}.nar`, nar);
  assert.ok(ok.status < 500 && !/Directory message/.test(ok.body.toString()), `${ok.status} ${ok.body.toString()}`);
});
