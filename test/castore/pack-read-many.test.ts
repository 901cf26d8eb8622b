// The on-disk store reads many packed blobs at once (DiskBlobService.
// readMany): those lying together in a pack are one read, so rendering a
// NAR of hundreds of small files reads its packs a few times, not once per
// file. Exact bytes whatever the mix (packed, loose, absent, repeated), a
// record damaged on disk answered as a read of it alone would be. Real
// on-disk store, real files.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, sameAddr, type Store } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { DiskBlobService } from '../../src/castore/disk/disk-blob-service.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';
import { blake3 } from '../../src/castore/digest.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import { putClosure } from '../../src/castore/directory-service.js';
import type { Directory } from '../../src/castore/messages.js';
import { renderNar } from '../../src/store/render-nar.js';
import { narBytes, type NarEntry } from '../../src/nix/nar.js';

const FILES = 400;
const file = (i: number) => Buffer.from(`small file ${i} `.repeat(1 + (i % 37)));

describe('on-disk store, many packed blobs at once', () => {
  let tmp: string;
  let store: Store;
  let blobs: DiskBlobService;
  let digests: Buffer[];

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'pack-read-many-'));
    store = openStore(sameAddr(fileAddr(join(tmp, 'store'))));
    blobs = store.blobs as unknown as DiskBlobService;
    assert.ok(blobs instanceof DiskBlobService);
    digests = [];
    for (let i = 0; i < FILES; i++) digests.push(await putBytes(store.blobs, file(i)));
  });

  after(async () => {
    await store.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('renders a NAR of 400 small files with a few pack reads, exactly', async () => {
    const dir: Directory = { directories: [], files: digests.map((digest, i) => ({ name: Buffer.from(`f${String(i).padStart(4, '0')}`), digest, size: file(i).length, executable: false })), symlinks: [] };
    await putClosure(store.directories, [dir]);
    const entries: NarEntry[] = dir.files.map((f, i) => ({ name: f.name, node: { type: 'regular', executable: false, size: f.size, contents: () => [file(i)] } }));
    const expected = createHash('sha256').update(await narBytes({ type: 'directory', entries: async () => entries })).digest('hex');
    const before = blobs.packs.dataReads;
    const h = createHash('sha256');
    for await (const c of renderNar({ type: 'directory', name: Buffer.from('x'), digest: directoryDigest(dir), size: directorySize(dir) }, store)) h.update(c);
    assert.equal(h.digest('hex'), expected);
    const reads = blobs.packs.dataReads - before;
    // One read per file was 400.
    assert.ok(reads <= 8, `${reads} pack reads for ${FILES} small files`);
  });

  it('answers a mix of packed, loose, absent and repeated blobs in order, exactly', async () => {
    const loose = Buffer.alloc(300 << 10, 'L'); // over a pack's largest blob: a file of its own
    const dl = await putBytes(store.blobs, loose);
    const absent = blake3(Buffer.from('never stored'));
    const ask = [digests[5], dl, absent, digests[5], digests[399], digests[0]];
    const got = await blobs.readMany(ask, [file(5).length, loose.length, 10, file(5).length, file(399).length, file(0).length]);
    assert.deepEqual(got.map((g) => g && Buffer.concat(g)), [file(5), loose, undefined, file(5), file(399), file(0)]);
    await assert.rejects(() => blobs.readMany([dl], [1000]), /longer than the 1000 bytes/);
  });

  it('stops when its signal is aborted: nothing is read after it', async () => {
    const loose = Buffer.alloc(300 << 10, 'M'); // a file of its own: read after the packed ones
    const dl = await putBytes(store.blobs, loose);
    const gone = new AbortController();
    gone.abort(new Error('the client went away'));
    const before = blobs.packs.dataReads;
    await assert.rejects(() => blobs.readMany([digests[7], dl], [file(7).length, loose.length], { signal: gone.signal }), /the client went away/);
    assert.equal(blobs.packs.dataReads, before, 'no pack read');
    // Aborted while the packed ones are read: the loose one is not started.
    const later = new AbortController();
    const reading = blobs.readMany([digests[8], dl], [file(8).length, loose.length], { signal: later.signal });
    later.abort(new Error('gone meanwhile'));
    await assert.rejects(reading, /gone meanwhile/);
    // Not aborted: both, exactly.
    const got = await blobs.readMany([digests[8], dl], [file(8).length, loose.length], { signal: new AbortController().signal });
    assert.deepEqual(got.map((g) => g && Buffer.concat(g)), [file(8), loose]);
  });

  it('a record damaged on disk is answered as read() answers it, its neighbours exactly', async () => {
    // Damage record 200's header magic in the pack file: read() then says the blob is not there.
    const packs = (await readdir(join(tmp, 'store', 'packs'))).filter((n) => n.endsWith('.pack'));
    assert.equal(packs.length, 1);
    const h = await open(join(tmp, 'store', 'packs', packs[0]), 'r+');
    try {
      const data = await h.readFile();
      const at = data.indexOf(file(200)) - 40; // the record header before its bytes
      assert.ok(at >= 0);
      await h.write(Buffer.from('XXXX'), 0, 4, at);
    } finally {
      await h.close();
    }
    assert.equal(await blobs.read(digests[200]), undefined, 'read() of the damaged record');
    assert.deepEqual(await readAll(store.blobs, digests[199]), file(199));
    const got = await blobs.readMany(digests.slice(190, 211), digests.slice(190, 211).map((_, k) => file(190 + k).length));
    got.forEach((g, k) => assert.deepEqual(g && Buffer.concat(g), 190 + k === 200 ? undefined : file(190 + k), `blob ${190 + k}`));
  });
});
