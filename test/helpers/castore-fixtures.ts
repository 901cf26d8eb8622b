// The castore.md §5 fixtures, built from their definitions.
import type { Directory, DirectoryNode } from '../../src/castore/messages.js';
import { directoryDigest, directorySize, type SizeFormula } from '../../src/castore/directory.js';
import { blake3 } from '../../src/castore/digest.js';

export const b = (s: string): Buffer => Buffer.from(s, 'latin1');
export const hex = (s: string): Buffer => Buffer.from(s, 'hex');

export const EMPTY_DIGEST = blake3(new Uint8Array(0));
export const HELLO = b('Hello World!');
export const HELLO_DIGEST = blake3(HELLO);

export function emptyDir(): Directory {
  return { directories: [], files: [], symlinks: [] };
}

export function dirNode(name: string, child: Directory, formula: SizeFormula = 'head'): DirectoryNode {
  return { name: b(name), digest: directoryDigest(child), size: directorySize(child, formula) };
}

export function fixtures(formula: SizeFormula = 'head') {
  const A = emptyDir();
  const WITH_KEEP: Directory = { ...emptyDir(), files: [{ name: b('.keep'), digest: EMPTY_DIGEST, size: 0, executable: false }] };
  const COMPLICATED: Directory = {
    directories: [dirNode('keep', WITH_KEEP, formula)],
    files: [{ name: b('.keep'), digest: EMPTY_DIGEST, size: 0, executable: false }],
    symlinks: [{ name: b('aa'), target: b('/nix/store/somewhereelse') }],
  };
  const B: Directory = { ...emptyDir(), directories: [dirNode('a', A, formula)] };
  const C: Directory = { ...emptyDir(), directories: [dirNode('a', A, formula), dirNode("a'", A, formula)] };
  const D: Directory = { ...emptyDir(), directories: [dirNode('a', A, formula), dirNode('b', B, formula)] };
  return { A, WITH_KEEP, COMPLICATED, B, C, D };
}

/** BLOB_B: bytes 00..fe repeated 4096 times. */
export function blobB(): Buffer {
  const unit = Buffer.from(Array.from({ length: 255 }, (_, i) => i));
  return Buffer.concat(Array.from({ length: 4096 }, () => unit));
}
