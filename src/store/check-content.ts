// "A PathInfo never dangles": before one is stored, everything its root node
// refers to must already be in the castore.
import type { Node } from '../castore/messages.js';
import { b3Hex, b3String } from '../castore/digest.js';
import { CastoreError } from '../castore/errors.js';
import { showName } from '../castore/directory.js';
import type { Castore } from './render-nar.js';

const STAT_CONCURRENCY = 32;

function missing(what: string): CastoreError {
  return new CastoreError('precondition', `${what} is not in the store; upload it before the PathInfo`);
}

export async function assertContentPresent(node: Node, store: Castore): Promise<void> {
  if (node.type === 'symlink') return;
  if (node.type === 'file') {
    if (!(await store.blobs.stat(node.digest))) missingBlob(node.digest, node.name);
    return;
  }
  const blobs = new Map<string, { digest: Uint8Array; name: Uint8Array }>();
  let count = 0;
  try {
    for await (const dir of store.directories.getRecursive(node.digest)) {
      count++;
      for (const f of dir.files) blobs.set(b3Hex(f.digest), f);
    }
  } catch (err) {
    throw missing(`part of directory ${b3String(node.digest)} (${(err as Error).message})`);
  }
  if (count === 0) throw missing(`root directory ${b3String(node.digest)}`);
  const todo = [...blobs.values()];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      const f = todo[next++];
      if (!(await store.blobs.stat(f.digest))) missingBlob(f.digest, f.name);
    }
  };
  await Promise.all(Array.from({ length: Math.min(STAT_CONCURRENCY, todo.length) }, worker));
}

function missingBlob(digest: Uint8Array, name: Uint8Array): never {
  throw missing(`blob ${b3String(digest)} (file ${showName(name)})`);
}
