// "A PathInfo never dangles": before one is stored, everything its root node
// refers to must already be in the castore.
import type { Node } from '../castore/messages.js';
import { b3Hex, b3String } from '../castore/digest.js';
import { CastoreError, invalid } from '../castore/errors.js';
import { showName } from '../castore/directory.js';
import type { Castore } from './render-nar.js';

const STAT_CONCURRENCY = 32;

function missing(what: string): CastoreError {
  return new CastoreError('precondition', `${what} is not in the store; upload it before the PathInfo`);
}

type FileEntry = { digest: Uint8Array; name: Uint8Array; size: number };

/**
 * The blob is there and, where the blob service can tell its length
 * cheaply, as long as the entry states (tvix does not check this; a
 * PathInfo whose NAR cannot be rendered must not be accepted).
 */
async function checkBlob(store: Castore, f: FileEntry): Promise<void> {
  if (!store.blobs.sizeOf) {
    if (!(await store.blobs.stat(f.digest))) missingBlob(f.digest, f.name);
    return;
  }
  const real = await store.blobs.sizeOf(f.digest);
  if (real === undefined) missingBlob(f.digest, f.name);
  if (real !== f.size) {
    throw invalid(`file ${showName(f.name)} states size ${f.size}, but its blob ${b3String(f.digest)} has ${real} bytes`);
  }
}

export async function assertContentPresent(node: Node, store: Castore): Promise<void> {
  if (node.type === 'symlink') return;
  if (node.type === 'file') return checkBlob(store, node);
  // A blob may appear under several entries: each (digest, size) is checked once.
  const blobs = new Map<string, FileEntry>();
  let count = 0;
  try {
    for await (const dir of store.directories.getRecursive(node.digest)) {
      count++;
      for (const f of dir.files) {
        const key = `${b3Hex(f.digest)}:${f.size}`;
        if (!blobs.has(key)) blobs.set(key, f); // errors name the first such file
      }
    }
  } catch (err) {
    throw missing(`part of directory ${b3String(node.digest)} (${(err as Error).message})`);
  }
  if (count === 0) throw missing(`root directory ${b3String(node.digest)}`);
  const todo = [...blobs.values()];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      await checkBlob(store, todo[next++]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(STAT_CONCURRENCY, todo.length) }, worker));
}

function missingBlob(digest: Uint8Array, name: Uint8Array): never {
  throw missing(`blob ${b3String(digest)} (file ${showName(name)})`);
}
