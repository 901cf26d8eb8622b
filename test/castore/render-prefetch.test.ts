// NAR rendering reads the next small files of a directory ahead of the one
// being written (each is a round trip over gRPC or S3), in NAR order, and a
// read that fails still fails the render, naming the blob; a directory at
// many places is loaded once.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { directoryDigest } from '../../src/castore/directory.js';
import { blake3 } from '../../src/castore/digest.js';
import type { Directory } from '../../src/castore/messages.js';
import { renderNar, ReadAheadStats, type Castore } from '../../src/store/render-nar.js';
import { writeNar, type NarNode } from '../../src/nix/nar.js';
import { b } from '../helpers/castore-fixtures.js';

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

/** A real memory store whose reads take a millisecond, counting how many run at once. */
/** The directory service itself, counting the Gets made through it. */
function countingGets(inner: Castore['directories']): { directories: Castore['directories']; gets: () => number } {
  let count = 0;
  const directories = new Proxy(inner, {
    get(target, key) {
      if (key === 'get') return (d: Uint8Array) => (count++, target.get(d));
      const v = Reflect.get(target, key) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { directories, gets: () => count };
}

function slowReads(store: Castore) {
  const seen = { inFlight: 0, max: 0, reads: 0 };
  const castore: Castore = {
    directories: store.directories,
    blobs: {
      ...store.blobs,
      stat: (d) => store.blobs.stat(d),
      put: () => store.blobs.put(),
      close: () => store.blobs.close(),
      read: async (d) => {
        seen.reads++;
        seen.max = Math.max(seen.max, ++seen.inFlight);
        await new Promise((r) => setTimeout(r, 1));
        seen.inFlight--;
        return store.blobs.read(d);
      },
    },
  };
  return { castore, seen };
}

it('reads small files ahead, and the NAR is the same as written sequentially', async () => {
  const store = openStore(sameAddr('memory://'));
  const contents = Array.from({ length: 40 }, (_, i) => b(`file ${i}\n`.repeat(i + 1)));
  const dir: Directory = { directories: [], symlinks: [], files: [] };
  for (let i = 0; i < contents.length; i++) {
    const digest = await putBytes(store.blobs, contents[i]);
    dir.files.push({ name: b(`f${String(i).padStart(2, '0')}`), digest, size: contents[i].length, executable: i % 3 === 0 });
  }
  await putClosure(store.directories, [dir]);
  const { castore, seen } = slowReads(store);
  const nar = await collect(renderNar({ type: 'directory', name: b('root'), digest: directoryDigest(dir), size: contents.length }, castore));

  // The same tree written by the NAR writer straight from memory.
  const want: NarNode = {
    type: 'directory',
    entries: async function* () {
      for (let i = 0; i < contents.length; i++) {
        const data = contents[i];
        yield { name: b(`f${String(i).padStart(2, '0')}`), node: { type: 'regular', executable: i % 3 === 0, size: data.length, contents: async function* () { yield data; } } };
      }
    },
  };
  assert.ok(nar.equals(await collect(writeNar(want))));
  assert.equal(seen.reads, contents.length, 'each file read once');
  assert.ok(seen.max > 4, `reads ran ${seen.max} at once`);
  await store.close();
});

it('a missing blob among the prefetched ones fails the render, naming it', async () => {
  const store = openStore(sameAddr('memory://'));
  const present = await putBytes(store.blobs, b('here'));
  const missing = blake3(b('never stored'));
  const dir: Directory = {
    directories: [],
    symlinks: [],
    files: [
      { name: b('a'), digest: present, size: 4, executable: false },
      { name: b('b'), digest: missing, size: 12, executable: false },
      { name: b('c'), digest: present, size: 4, executable: false },
    ],
  };
  await putClosure(store.directories, [dir]);
  await assert.rejects(
    collect(renderNar({ type: 'directory', name: b('root'), digest: directoryDigest(dir), size: 3 }, store)),
    (e: Error) => e.message.includes('not found') && e.message.includes('b3:'),
  );
  await store.close();
});

it('a directory found at many places in the tree is loaded once, not once per place', async () => {
  const store = openStore(sameAddr('memory://'));
  const data = b('the same file\n');
  const digest = await putBytes(store.blobs, data);
  const file = (name: string) => ({ name: b(name), digest, size: data.length, executable: false });
  const inner: Directory = { directories: [], symlinks: [], files: [file('x')] };
  const mid: Directory = { directories: [{ name: b('inner'), digest: directoryDigest(inner), size: 1 }], symlinks: [], files: [file('a'), file('b')] };
  const PLACES = 30;
  const names = Array.from({ length: PLACES }, (_, i) => `d${String(i).padStart(2, '0')}`);
  const root: Directory = { directories: names.map((n) => ({ name: b(n), digest: directoryDigest(mid), size: 4 })), symlinks: [], files: [] };
  await putClosure(store.directories, [inner, mid, root]);
  // The real memory service, counting its Gets.
  const { directories, gets } = countingGets(store.directories);
  const nar = await collect(renderNar({ type: 'directory', name: b('root'), digest: directoryDigest(root), size: 1 + 4 * PLACES }, { blobs: store.blobs, directories }));

  const regular: NarNode = { type: 'regular', executable: false, size: data.length, contents: async function* () { yield data; } };
  const dirOf = (entries: [string, NarNode][]): NarNode => ({
    type: 'directory',
    entries: async function* () {
      for (const [name, node] of entries) yield { name: b(name), node };
    },
  });
  const midNode = dirOf([['a', regular], ['b', regular], ['inner', dirOf([['x', regular]])]]);
  assert.ok(nar.equals(await collect(writeNar(dirOf(names.map((n) => [n, midNode]))))));
  assert.ok(gets() <= 3 + 2, `3 distinct directories at ${1 + 2 * PLACES} places took ${gets()} Gets`);
  await store.close();
});

it('a wide tree (more directories than are loaded ahead at once) loads each directory once', async () => {
  const store = openStore(sameAddr('memory://'));
  const WIDE = 600;
  const dirs: Directory[] = [];
  const subs = [];
  for (let i = 0; i < WIDE; i++) {
    const data = b(`file ${i}\n`);
    const digest = await putBytes(store.blobs, data);
    const leaf: Directory = { directories: [], symlinks: [], files: [{ name: b('f'), digest, size: data.length, executable: false }] };
    const mid: Directory = { directories: [{ name: b('leaf'), digest: directoryDigest(leaf), size: 2 }], symlinks: [], files: [] };
    dirs.push(leaf, mid);
    subs.push({ name: b(`d${String(i).padStart(3, '0')}`), digest: directoryDigest(mid), size: 3 });
  }
  const root: Directory = { directories: subs, symlinks: [], files: [] };
  await putClosure(store.directories, [...dirs, root]);
  const { directories, gets } = countingGets(store.directories);
  const nar = await collect(renderNar({ type: 'directory', name: b('root'), digest: directoryDigest(root), size: 1 + 3 * WIDE }, { blobs: store.blobs, directories }));
  assert.ok(nar.length > 0);
  // Loads ahead dropped for room were loaded a second time when the walk got there.
  assert.equal(gets(), 1 + 2 * WIDE);
  await store.close();
});

it('a small file at many places in the tree is read once and written at each place from a copy', async () => {
  const store = openStore(sameAddr('memory://'));
  const same = b('the same licence text\n'.repeat(50));
  const sameDigest = await putBytes(store.blobs, same);
  const PLACES = 20;
  const dirs: Directory[] = [];
  const want: [string, NarNode][] = [];
  const regular = (data: Uint8Array): NarNode => ({ type: 'regular', executable: false, size: data.length, contents: async function* () { yield data; } });
  for (let i = 0; i < PLACES; i++) {
    const own = b(`file of place ${i}\n`);
    const d: Directory = {
      directories: [],
      symlinks: [],
      files: [
        { name: b('COPYING'), digest: sameDigest, size: same.length, executable: false },
        { name: b('own'), digest: await putBytes(store.blobs, own), size: own.length, executable: false },
      ],
    };
    dirs.push(d);
    want.push([`p${String(i).padStart(2, '0')}`, { type: 'directory', entries: async function* () { yield { name: b('COPYING'), node: regular(same) }; yield { name: b('own'), node: regular(own) }; } }]);
  }
  const root: Directory = { directories: dirs.map((d, i) => ({ name: b(`p${String(i).padStart(2, '0')}`), digest: directoryDigest(d), size: 2 })), symlinks: [], files: [] };
  await putClosure(store.directories, [...dirs, root]);
  const { castore, seen } = slowReads(store);
  const stats = new ReadAheadStats();
  const nar = await collect(renderNar({ type: 'directory', name: b('root'), digest: directoryDigest(root), size: 1 + 3 * PLACES }, castore, { stats }));
  const wantNar = await collect(writeNar({ type: 'directory', entries: async function* () { for (const [name, node] of want) yield { name: b(name), node }; } }));
  assert.ok(nar.equals(wantNar));
  assert.equal(seen.reads, 1 + PLACES, 'the shared file read once, each own file once');
  assert.equal(stats.reused, PLACES - 1);
  await store.close();
});
