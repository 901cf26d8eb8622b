// Issue 21: a daemon's peak RSS during a copy was the largest path's
// Directory closure, decoded (an object and two views per entry) and held
// from the Directory Put stream until its checks were done, plus the
// garbage of decoding and checking it twice (Directory Put, PathInfo Put).
// A real daemon receives a closure of 300,000 file entries (14 MiB
// encoded); its peak RSS, from /proc, may grow by far less than the
// decoded closure took (115-200 MiB over the baseline before the change,
// 22 MiB after).
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { Writer } from '../helpers/grpc-writes.js';
import { peakRssKiB } from '../helpers/proc-usage.js';
import { blake3 } from '../../src/castore/digest.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import type { Directory } from '../../src/castore/messages.js';
import type { PathInfo } from '../../src/store/messages.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';

const DIRS = 300;
const FILES = 1000;
/** Growth allowed: the encoded closure (14 MiB), the request messages and garbage not yet collected. */
const GROWTH_MIB = 60;

let daemon: DaemonProcess;
let w: Writer;

before(async () => {
  daemon = await startDaemonProcess();
  w = new Writer(daemon.socket);
});
after(async () => {
  w?.close();
  await daemon?.stop();
});

const BLOB = Buffer.from('x');

/** A closure of `dirs` directories of `files` entries each (every one the same 1-byte blob) under one root. */
function closure(label: string, dirs: number, files: number): { ordered: Directory[]; info: PathInfo } {
  const digest = blake3(BLOB);
  const ordered: Directory[] = [];
  const root: Directory = { directories: [], files: [], symlinks: [] };
  for (let d = 0; d < dirs; d++) {
    const dir: Directory = { directories: [], files: [], symlinks: [] };
    for (let f = 0; f < files; f++) {
      dir.files.push({ name: Buffer.from(`${label}${d}-${String(f).padStart(6, '0')}`), digest, size: BLOB.length, executable: false });
    }
    ordered.push(dir);
    root.directories.push({ name: Buffer.from(`d${String(d).padStart(6, '0')}`), digest: directoryDigest(dir), size: directorySize(dir) });
  }
  ordered.push(root);
  const storeDigest = Buffer.from(blake3(Buffer.from(label)).subarray(0, 20));
  const info: PathInfo = {
    node: { type: 'directory', name: Buffer.from(`${nix32(storeDigest)}-${label}`), digest: directoryDigest(root), size: directorySize(root) },
    references: [],
    narinfo: { narSize: 120, narSha256: Buffer.alloc(32, 7), signatures: [], referenceNames: [] },
  };
  return { ordered, info };
}

/** Stores the closure and its PathInfo through the daemon; answers the root's digest. */
async function store(label: string, dirs: number, files: number): Promise<Buffer> {
  const { ordered, info } = closure(label, dirs, files);
  const root = directoryDigest(ordered.at(-1)!);
  const put = await w.putDirectories(ordered);
  assert.equal(put.code, status.OK, `Directory Put: ${put.name} ${put.details}`);
  const pi = await w.putPathInfo(info);
  assert.equal(pi.code, status.OK, `PathInfo Put: ${pi.name} ${pi.details}`);
  return root;
}

it('holds a large closure compactly while a Directory Put and its PathInfo Put check it', async (t) => {
  assert.equal((await w.putBlob(BLOB)).code, status.OK);
  await store('warm', 4, 100); // the code paths' own memory belongs to the baseline
  const baseline = peakRssKiB(daemon.child.pid!) / 1024;
  const root = await store('large', DIRS, FILES);
  const growth = peakRssKiB(daemon.child.pid!) / 1024 - baseline;
  t.diagnostic(`peak RSS ${baseline.toFixed(0)} → ${(baseline + growth).toFixed(0)} MiB`);
  assert.ok(growth < GROWTH_MIB, `the daemon's peak RSS grew by ${growth.toFixed(0)} MiB (baseline ${baseline.toFixed(0)} MiB) for a closure of ${DIRS * FILES} entries`);
  // The closure is stored whole: its root reads back with every subdirectory.
  const back = await w.getDirectory(root);
  assert.equal(back.code, status.OK);
  assert.equal(back.res?.[0].directories.length, DIRS);
});
