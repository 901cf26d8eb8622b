// What NAR rendering allocates per file and per directory, counted (no
// timing): the writer takes a file whose read has finished as an array of
// chunks and a directory's entries as one array, so it makes no
// async-iterator step, generator or closure per file or entry. Each such
// step was a few promises, and with 50,000 files their garbage was a good
// part of the renderer's collection time.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { directoryDigest } from '../../src/castore/directory.js';
import type { Directory } from '../../src/castore/messages.js';
import { renderNar } from '../../src/store/render-nar.js';
import { b } from '../helpers/castore-fixtures.js';
import { promisesDuring } from '../helpers/promises.js';

const DIRS = 10;
const FILES = 400;

it('rendering small files makes no promise per file or entry beyond the store\'s own reads', async () => {
  const store = openStore(sameAddr('memory://'));
  const subs = [];
  const dirs: Directory[] = [];
  for (let d = 0; d < DIRS; d++) {
    const dir: Directory = { directories: [], symlinks: [], files: [] };
    for (let i = 0; i < FILES; i++) {
      const data = b(`dir ${d} file ${i}\n`);
      dir.files.push({ name: b(`f${String(i).padStart(4, '0')}`), digest: await putBytes(store.blobs, data), size: data.length, executable: false });
    }
    dirs.push(dir);
    subs.push({ name: b(`d${d}`), digest: directoryDigest(dir), size: FILES });
  }
  const root: Directory = { directories: subs, symlinks: [], files: [] };
  await putClosure(store.directories, [...dirs, root]);
  const node = { type: 'directory' as const, name: b('root'), digest: directoryDigest(root), size: DIRS * (FILES + 1) };

  // The store's reads alone: every blob read whole, as the renderer's groups read them.
  const digests = dirs.flatMap((d) => d.files.map((f) => f.digest));
  const reads = await promisesDuring(async () => {
    await Promise.all(
      digests.map(async (digest) => {
        for await (const _ of (await store.blobs.read(digest))!) {
          // drop
        }
      }),
    );
  });
  const hash = createHash('sha256');
  const rendering = await promisesDuring(async () => {
    for await (const chunk of renderNar(node, store)) hash.update(chunk);
  });
  const files = DIRS * FILES;
  const own = (rendering - reads) / files;
  // 28 per file with a generator per file and an iterator step per entry
  // (6.6 without; most of those are the one-by-one reads of a store
  // without readMany, which S3 does not do).
  assert.ok(own < 8, `the renderer made ${own.toFixed(1)} promises per file of its own (${rendering} in all, the reads ${reads})`);
  await store.close();
});
