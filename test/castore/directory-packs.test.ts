// Directories of the on-disk store go to packs of their own, by the same
// group commit as small blobs: a store path's thousands of directories cost
// a few fsyncs, not a file, an fsync and a rename each. Real files; stores
// written before directory packs keep working.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskDirectoryService } from '../../src/castore/disk/disk-directory-service.js';
import { DiskLayout } from '../../src/castore/disk/disk-layout.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { directoryDigest, directorySize, encodeDirectory } from '../../src/castore/directory.js';
import { b3Hex } from '../../src/castore/digest.js';
import type { Directory } from '../../src/castore/messages.js';
import { StoreChecker } from '../../src/fsck/fsck.js';

let tmp: string;
before(async () => (tmp = await mkdtemp(join(tmpdir(), 'castore-dirpacks-'))));
after(() => rm(tmp, { recursive: true, force: true }));

/** A tree (symlinks for leaves, so it needs no blobs) of `width`×`width` leaves under `width` middles under one root, children first. */
function tree(width: number, tag: string): Directory[] {
  const out: Directory[] = [];
  const middles: Directory[] = [];
  for (let m = 0; m < width; m++) {
    const leaves: Directory[] = [];
    for (let l = 0; l < width; l++) {
      const leaf: Directory = { directories: [], files: [], symlinks: [{ name: Buffer.from(`s-${tag}-${m}-${l}`), target: Buffer.from('elsewhere') }] };
      leaves.push(leaf);
      out.push(leaf);
    }
    const mid: Directory = { directories: leaves.map((d, l) => ({ name: Buffer.from(`l${String(l).padStart(4, '0')}`), digest: directoryDigest(d), size: directorySize(d, 'head') })), files: [], symlinks: [] };
    middles.push(mid);
    out.push(mid);
  }
  out.push({ directories: middles.map((d, m) => ({ name: Buffer.from(`m${String(m).padStart(4, '0')}`), digest: directoryDigest(d), size: directorySize(d, 'head') })), files: [], symlinks: [] });
  return out;
}

it('one Put of 2,500 directories is one batch of the directory pack; another instance reads them all', async () => {
  const root = join(tmp, 'one-put');
  const svc = new DiskDirectoryService(new DiskLayout(root));
  const dirs = tree(50, 'a');
  const rootDigest = await putClosure(svc, dirs);
  assert.equal(svc.packs.batches, 1, 'all directories of the Put went out together');
  await svc.close();
  assert.deepEqual(await readdir(join(root, 'directories')), [], 'no directory files');

  const again = new DiskDirectoryService(new DiskLayout(root));
  const got: Directory[] = [];
  for await (const d of again.getRecursive(rootDigest)) got.push(d);
  assert.equal(got.length, dirs.length);
  assert.deepEqual(new Set(got.map((d) => b3Hex(directoryDigest(d)))), new Set(dirs.map((d) => b3Hex(directoryDigest(d)))));
  // Putting them again stores nothing new.
  await putClosure(again, dirs);
  assert.equal(again.packs.batches, 0);
  await again.close();

  const counts = await new StoreChecker(root, {}).run();
  assert.equal(counts.errors, 0);
  assert.equal(counts.directories, dirs.length);
  assert.equal(counts.orphanedDirectories, 1, 'the root: no PathInfo refers to it');
});

it('a store from before directory packs: its directory files are read, not packed again, and fsck counts both kinds', async () => {
  const root = join(tmp, 'legacy');
  const old = tree(3, 'old');
  for (const d of old) {
    const hex = b3Hex(directoryDigest(d));
    await mkdir(join(root, 'directories', hex.slice(0, 2)), { recursive: true });
    await writeFile(join(root, 'directories', hex.slice(0, 2), hex), encodeDirectory(d));
  }
  const svc = new DiskDirectoryService(new DiskLayout(root));
  const oldRoot = directoryDigest(old[old.length - 1]);
  assert.deepEqual(await svc.get(oldRoot), old[old.length - 1]);
  await putClosure(svc, old);
  assert.equal(svc.packs.batches, 0, 'directories stored as files are not packed again');

  // A new closure whose root refers to an old directory: only the new ones are packed.
  const top: Directory = { directories: [{ name: Buffer.from('old'), digest: oldRoot, size: directorySize(old[old.length - 1], 'head') }], files: [], symlinks: [] };
  const newer = [...tree(2, 'new'), top];
  await putClosure(svc, [...old, top]);
  await putClosure(svc, newer.slice(0, -1));
  assert.equal(svc.packs.batches, 2);
  const got: Directory[] = [];
  for await (const d of svc.getRecursive(directoryDigest(top))) got.push(d);
  assert.equal(got.length, old.length + 1);
  await svc.close();

  const counts = await new StoreChecker(root, {}).run();
  assert.equal(counts.errors, 0);
  assert.equal(counts.directories, old.length + newer.length);
  assert.equal(counts.orphanedDirectories, 2, 'the two roots nothing refers to: the new tree and top');
});
