// "A PathInfo never dangles": before one is stored, everything its root node
// refers to must already be in the castore.
import type { Directory, Node } from '../castore/messages.js';
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
 * PathInfo whose NAR cannot be rendered must not be accepted). With
 * `missingOk`, an absent blob passes (a Directory may be uploaded before
 * its blobs; its PathInfo may not).
 */
async function checkBlob(blobs: Castore['blobs'], f: FileEntry, missingOk = false): Promise<void> {
  if (!blobs.sizeOf) {
    if (!missingOk && !(await blobs.stat(f.digest))) missingBlob(f.digest, f.name);
    return;
  }
  const real = await blobs.sizeOf(f.digest);
  if (real === undefined) {
    if (missingOk) return;
    missingBlob(f.digest, f.name);
  }
  if (real !== f.size) {
    throw invalid(`file ${showName(f.name)} states size ${f.size}, but its blob ${b3String(f.digest)} has ${real} bytes`);
  }
}

/** Lookups in flight at once: a scale-out store answers each turn's lookups in one query. */
const SIZE_LOOKUPS = 1024;

/**
 * Every file entry of `dirs` states its blob's real size, for the blobs
 * the store has (Directory Put: a Directory whose files cannot be rendered
 * is refused before it is stored). Each (digest, size) is looked up
 * once; the lookups run concurrently.
 */
export async function checkFileSizes(dirs: Iterable<Directory>, blobs: Castore['blobs']): Promise<void> {
  if (!blobs.sizeOf) return; // a gRPC store: the daemon behind it checks
  const todo = new Map<string, FileEntry>();
  for (const d of dirs) {
    for (const f of d.files) {
      const key = `${b3Hex(f.digest)}:${f.size}`;
      if (!todo.has(key)) todo.set(key, f);
    }
  }
  await forEachConcurrently([...todo.values()], SIZE_LOOKUPS, (f) => checkBlob(blobs, f, true));
}

async function forEachConcurrently<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

export async function assertContentPresent(node: Node, store: Castore): Promise<void> {
  if (node.type === 'symlink') return;
  if (node.type === 'file') return checkBlob(store.blobs, node);
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
  await forEachConcurrently([...blobs.values()], STAT_CONCURRENCY, (f) => checkBlob(store.blobs, f));
}

function missingBlob(digest: Uint8Array, name: Uint8Array): never {
  throw missing(`blob ${b3String(digest)} (file ${showName(name)})`);
}
