// NAR rendering straight from the castore: directories are fetched as the
// walk reaches them and file contents stream from the blob service, so
// memory stays flat whatever the path's size.
import { createHash } from 'node:crypto';
import type { BlobService } from '../castore/blob-service.js';
import type { DirectoryService } from '../castore/directory-service.js';
import type { Directory, Node } from '../castore/messages.js';
import { b3String } from '../castore/digest.js';
import { CastoreError, storageError } from '../castore/errors.js';
import { writeNar, type NarNode } from '../nix/nar.js';

export interface Castore {
  blobs: BlobService;
  directories: DirectoryService;
}

function sortedEntries(d: Directory): Node[] {
  const all: Node[] = [
    ...d.directories.map((n) => ({ type: 'directory' as const, ...n })),
    ...d.files.map((n) => ({ type: 'file' as const, ...n })),
    ...d.symlinks.map((n) => ({ type: 'symlink' as const, ...n })),
  ];
  return all.sort((a, b) => Buffer.compare(a.name, b.name));
}

export function narNodeOf(node: Node, store: Castore): NarNode {
  switch (node.type) {
    case 'symlink':
      return { type: 'symlink', target: node.target };
    case 'file':
      return {
        type: 'regular',
        executable: node.executable,
        size: node.size,
        contents: async function* () {
          const stream = await store.blobs.read(node.digest);
          if (!stream) throw storageError(`blob ${b3String(node.digest)} not found`);
          yield* stream;
        },
      };
    case 'directory':
      return {
        type: 'directory',
        entries: async function* () {
          const dir = await store.directories.get(node.digest);
          if (!dir) throw storageError(`directory ${b3String(node.digest)} not found`);
          for (const child of sortedEntries(dir)) yield { name: child.name, node: narNodeOf(child, store) };
        },
      };
  }
}

/** The NAR bytes of a castore root node. */
export function renderNar(node: Node, store: Castore): AsyncGenerator<Uint8Array> {
  return writeNar(narNodeOf(node, store));
}

export async function calculateNar(node: Node, store: Castore): Promise<{ narSize: number; narSha256: Buffer }> {
  const hash = createHash('sha256');
  let narSize = 0;
  try {
    for await (const chunk of renderNar(node, store)) {
      hash.update(chunk);
      narSize += chunk.length;
    }
  } catch (err) {
    if (err instanceof CastoreError && err.kind !== 'storage') throw err;
    throw storageError(`failed rendering nar: ${(err as Error).message}`, err);
  }
  return { narSize, narSha256: hash.digest() };
}
