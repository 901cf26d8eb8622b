// A PathInfo Put checks its whole closure again right after the Directory
// Put that stored it; the on-disk store hands those directories out from
// memory instead of reading each back from its pack. A collection (real
// `nix-castore gc` process) moves the epoch: then the check reads the disk
// again, so directories deleted meanwhile are never taken for present.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import type { DiskDirectoryService } from '../../src/castore/disk/disk-directory-service.js';
import type { Directory, Node } from '../../src/castore/messages.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';
import type { PathInfo } from '../../src/store/messages.js';
import { runCli } from '../copy/run-cli.js';

/** `width` directories of one symlink each (no blobs needed) under one root, children first. */
function tree(width: number, tag: string): Directory[] {
  const leaves: Directory[] = Array.from({ length: width }, (_, i) => ({ directories: [], files: [], symlinks: [{ name: Buffer.from(`s-${tag}-${i}`), target: Buffer.from('elsewhere') }] }));
  const root: Directory = { directories: leaves.map((d, i) => ({ name: Buffer.from(`d${String(i).padStart(4, '0')}`), digest: directoryDigest(d), size: directorySize(d, 'head') })), files: [], symlinks: [] };
  return [...leaves, root];
}

function pathInfoOf(dirs: Directory[], label: string): PathInfo {
  const digest = Buffer.alloc(20, 3);
  const root = dirs[dirs.length - 1];
  const node: Node = { type: 'directory', name: Buffer.from(`${nix32(digest)}-${label}`), digest: directoryDigest(root), size: directorySize(root, 'head') };
  return { node, references: [], narinfo: { narSize: 1000, narSha256: Buffer.alloc(32, 1), signatures: [], referenceNames: [] } };
}

it('the PathInfo check after a Directory Put reads no pack; after a collection it reads the disk and refuses what is gone', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'recent-dirs-'));
  const root = join(tmp, 'store');
  const store = openStore(sameAddr(fileAddr(root)));
  try {
    const dirsSvc = store.directories as DiskDirectoryService;
    let packReads = 0;
    const read = dirsSvc.packs.read.bind(dirsSvc.packs);
    dirsSvc.packs.read = (hex) => {
      packReads++;
      return read(hex);
    };
    const dirs = tree(300, 'a');
    await putClosure(store.directories, dirs);
    const info = pathInfoOf(dirs, 'recent-a');
    await store.pathInfos.put(info);
    assert.equal(packReads, 0, 'every directory of the closure came from memory');
    assert.equal(dirsSvc.recent.hits, dirs.length);

    // Another closure, not referred to by any PathInfo: a collection deletes it.
    const junk = tree(3000, 'b'); // most of the pack: the collector rewrites it without them
    await putClosure(store.directories, junk);
    await dirsSvc.packs.seal(); // a pack still being written is never collected
    const pin = await runCli(['pin', 'add', 'keep', `/nix/store/${info.node!.name.toString()}`, '--data', root]);
    assert.equal(pin.code, 0, pin.stderr);
    const gc = await runCli(['gc', '--data', root, '--keep-since', '0', '--grace', '0s']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, /deleted [1-9]\d* directories/, gc.stdout);
    await assert.rejects(store.pathInfos.put(pathInfoOf(junk, 'recent-b')), /not in the store/, 'a collected directory is not taken for present');
    assert.ok(packReads > 0, 'after the collection the check read the disk');
    // What a PathInfo keeps is still there, read from disk.
    packReads = 0;
    await store.pathInfos.put(info);
    assert.ok(packReads >= dirs.length);
  } finally {
    await store.close();
    await rm(tmp, { recursive: true, force: true });
  }
});
