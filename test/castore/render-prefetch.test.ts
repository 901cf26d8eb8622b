// NAR rendering reads the next small files of a directory ahead of the one
// being written (each is a round trip over gRPC or S3), in NAR order, and a
// read that fails still fails the render, naming the blob.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { directoryDigest } from '../../src/castore/directory.js';
import { blake3 } from '../../src/castore/digest.js';
import type { Directory } from '../../src/castore/messages.js';
import { renderNar, type Castore } from '../../src/store/render-nar.js';
import { writeNar, type NarNode } from '../../src/nix/nar.js';
import { b } from '../helpers/castore-fixtures.js';

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

/** A real memory store whose reads take a millisecond, counting how many run at once. */
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
