// `nix-castore stats` on a store with known contents, on each backend: a
// real Nix path copied with `nix-castore copy` into file://, S3 +
// PostgreSQL, and daemons serving either. Its figures must match Nix's NAR
// size and the path's distinct file contents.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess } from '../helpers/daemon.js';
import { freshScaleoutAddr } from '../helpers/scaleout.js';
import { nixPathInfo, runNix } from '../helpers/nix.js';
import { runCli } from '../copy/run-cli.js';
import { fileAddr } from '../../src/addr/parse.js';

const SAME = 'the same bytes twice\n';
const OTHER = 'other bytes\n';

let tmp: string;
let path: string;
let narSize: number;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'stats-cli-'));
  // Three files, two distinct contents: the store keeps two blobs.
  const src = join(tmp, `stats-src-${process.pid}-${Date.now()}`);
  await mkdir(join(src, 'sub'), { recursive: true });
  await writeFile(join(src, 'a.txt'), SAME);
  await writeFile(join(src, 'sub', 'b.txt'), SAME);
  await writeFile(join(src, 'c.txt'), OTHER);
  path = (await runNix('nix-store', ['--add', src])).stdout.toString().trim();
  narSize = (await nixPathInfo([path]))[0].narSize!;
});
after(async () => {
  await runNix('nix-store', ['--delete', path]).catch(() => undefined);
  await rm(tmp, { recursive: true, force: true });
});

async function stats(store: string) {
  const r = await runCli(['stats', '--json', '--store', store]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function copyAndCheck(store: string, countedAt = store): Promise<void> {
  const empty = await stats(countedAt);
  assert.deepEqual(empty, { pathInfos: 0, narBytes: 0, directories: 0, directoryBytes: 0, blobs: 0, blobBytes: 0, storedBytes: 0, dedupRatio: null });
  const c = await runCli(['copy', '--quiet', '--store', store, path]);
  assert.equal(c.code, 0, c.stderr);
  const s = await stats(countedAt);
  assert.equal(s.pathInfos, 1);
  assert.equal(s.narBytes, narSize);
  assert.equal(s.blobs, 2, 'three files, two contents');
  assert.equal(s.blobBytes, SAME.length + OTHER.length);
  assert.ok(s.directories >= 2, 'the root and sub/');
  assert.ok(s.directoryBytes > 0);
  assert.equal(s.storedBytes, s.blobBytes + s.directoryBytes);
  assert.equal(s.dedupRatio, narSize / s.storedBytes);
}

describe('nix-castore stats', () => {
  it('file://', async () => {
    const dir = join(tmp, 'file-store');
    // A directory that does not exist is no store (a mistyped path); an empty one is a fresh store.
    const missing = await runCli(['stats', '--json', '--store', fileAddr(dir)]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /there is no store at/);
    await mkdir(dir);
    await copyAndCheck(fileAddr(dir));
  });

  it('a daemon on file://, and its directory counted directly', async () => {
    const data = join(tmp, 'daemon-store');
    const d = await startDaemonProcess({ args: ['--data', data] });
    try {
      await copyAndCheck(d.addr);
      assert.equal((await stats(fileAddr(data))).narBytes, narSize);
    } finally {
      await d.stop();
    }
  });

  it('S3 + PostgreSQL, and a daemon serving it', async () => {
    const direct = await freshScaleoutAddr('stats-cli');
    const served = await freshScaleoutAddr('stats-cli-daemon');
    const d = await startDaemonProcess({ args: ['--store', served.addr] });
    try {
      await copyAndCheck(direct.addr);
      await copyAndCheck(d.addr);
      assert.equal((await stats(served.addr)).narBytes, narSize, 'counted directly too');
    } finally {
      await d.stop();
      await direct.drop();
      await served.drop();
    }
  });

  it('says what is wrong with a store that cannot be counted, and has --help', async () => {
    const r = await runCli(['stats', '--store', `grpc+unix://${join(tmp, 'nobody.sock')}?wait-connect=1`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^nix-castore: /);
    const h = await runCli(['stats', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /^Usage: nix-castore stats \[--store ADDR\] \[--json\]/);
    const bad = await runCli(['stats', 'extra']);
    assert.equal(bad.code, 2);
  });
});
