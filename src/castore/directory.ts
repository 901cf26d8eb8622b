// Directory rules of castore.md §2–4: canonical digest, validation and the
// two DirectoryNode.size formulas.
import { encodeWith } from '../proto/writer.js';
import { writeDirectory, type Directory, type DirectoryNode, type Node } from './messages.js';
import { blake3, b3String, B3_LEN } from './digest.js';
import { invalid, type CastoreError } from './errors.js';

export const MAX_NAME_LEN = 255;
export const MAX_TARGET_LEN = 4095;

/**
 * `head`: 2n + S — tvix since 2024-08-16 and snix (the default).
 * `legacy`: n + S — tvix up to 2024-08-15 (the "copy era").
 */
export type SizeFormula = 'head' | 'legacy';
export const SIZE_FORMULAS: readonly SizeFormula[] = ['head', 'legacy'];

/** The canonical (prost) encoding: what the digest is computed over. */
export function encodeDirectory(d: Directory): Buffer {
  return encodeWith(writeDirectory, d);
}

export function directoryDigest(d: Directory): Buffer {
  return blake3(encodeDirectory(d));
}

/**
 * Largest encoded Directory accepted: tonic's and grpc-js's default limit
 * on a received message (wire.md §7). A larger one could be stored, but no
 * client could read it back. Some 40,000 entries with short names.
 */
export const MAX_DIRECTORY_BYTES = 4 * 1024 * 1024;

function varintBytes(n: number): number {
  let b = 1;
  for (; n >= 128; b++) n = Math.floor(n / 128);
  return b;
}

/** A length-delimited field of `n` bytes; proto3 leaves out empty ones. */
function bytesField(n: number): number {
  return n === 0 ? 0 : 1 + varintBytes(n) + n;
}

/** What `node`, as an entry, adds to its Directory's canonical encoding (a field of its own). */
export function entryEncodedBytes(node: Node): number {
  let body = bytesField(node.name.length);
  if (node.type === 'symlink') body += bytesField(node.target.length);
  else {
    body += bytesField(node.digest.length);
    if (node.size > 0) body += 1 + varintBytes(node.size);
    if (node.type === 'file' && node.executable) body += 2;
  }
  return 1 + varintBytes(body) + body;
}

/** `what` (a directory) encodes to `bytes`, over MAX_DIRECTORY_BYTES. */
export function directoryTooLarge(what: string, bytes: number): CastoreError {
  return invalid(`${what} takes ${bytes} bytes as one Directory message, over the ${MAX_DIRECTORY_BYTES} a gRPC message may have, so no client could read it back`);
}

/** Roughly what an entry holds in memory once decoded: its name and target, and a digest and an object. */
export function decodedEntryBytes(node: Node): number {
  return node.type === 'symlink' ? node.name.length + node.target.length + 64 : node.name.length + 96;
}

/** decodedEntryBytes of all of `d`'s entries. */
export function decodedDirectoryBytes(d: Directory): number {
  let n = 0;
  for (const e of d.directories) n += e.name.length + 96;
  for (const e of d.files) n += e.name.length + 96;
  for (const e of d.symlinks) n += e.name.length + e.target.length + 64;
  return n;
}

export function entryCount(d: Directory): number {
  return d.directories.length + d.files.length + d.symlinks.length;
}

/** Size of `d` as its parent's DirectoryNode.size must state it. */
export function directorySize(d: Directory, formula: SizeFormula = 'head'): number {
  const n = entryCount(d);
  let size = formula === 'head' ? 2 * n : n;
  for (const child of d.directories) size += child.size;
  if (!Number.isSafeInteger(size)) throw invalid('directory size overflows');
  return size;
}

const SLASH = 0x2f;

export function nameProblem(name: Uint8Array): string | undefined {
  if (name.length === 0) return 'name is empty';
  if (name.length > MAX_NAME_LEN) return `name is longer than ${MAX_NAME_LEN} bytes`;
  if (name.length === 1 && name[0] === 0x2e) return 'name is "."';
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return 'name is ".."';
  if (name.includes(SLASH)) return 'name contains "/"';
  if (name.includes(0)) return 'name contains a NUL byte';
  return undefined;
}

export function targetProblem(target: Uint8Array): string | undefined {
  if (target.length === 0) return 'symlink target is empty';
  if (target.length > MAX_TARGET_LEN) return `symlink target is longer than ${MAX_TARGET_LEN} bytes`;
  if (target.includes(0)) return 'symlink target contains a NUL byte';
  return undefined;
}

/** `'name'` as tvix quotes names in errors, with control bytes escaped. */
export function showName(name: Uint8Array): string {
  return `'${JSON.stringify(Buffer.from(name).toString('latin1')).slice(1, -1)}'`;
}

/** Problem with the node's own fields (not its name), if any. */
export function nodeContentProblem(node: Node): string | undefined {
  if (node.type === 'symlink') return targetProblem(node.target);
  if (node.digest.length !== B3_LEN) return `invalid digest length ${node.digest.length}`;
  return undefined;
}

/** Throws an `invalid` CastoreError describing the first rule `d` breaks. */
export function validateDirectory(d: Directory): void {
  const seen = new Set<string>();
  const lists: [string, { name: Uint8Array }[]][] = [
    ['directories', d.directories],
    ['files', d.files],
    ['symlinks', d.symlinks],
  ];
  for (const [list, entries] of lists) {
    let prev: Uint8Array | undefined;
    for (const e of entries) {
      const problem = nameProblem(e.name);
      if (problem) throw invalid(`invalid entry in ${list}: ${problem} (${showName(e.name)})`);
      if (prev && Buffer.compare(prev, e.name) >= 0) {
        throw invalid(`${list} not sorted strictly by name: ${showName(e.name)} after ${showName(prev)}`);
      }
      const key = Buffer.from(e.name).toString('latin1');
      if (seen.has(key)) throw invalid(`duplicate name ${showName(e.name)}`);
      seen.add(key);
      prev = e.name;
    }
  }
  for (const n of d.directories) checkContent({ type: 'directory', ...n });
  for (const n of d.files) checkContent({ type: 'file', ...n });
  for (const n of d.symlinks) checkContent({ type: 'symlink', ...n });
  directorySize(d); // overflow check
}

function checkContent(node: Node): void {
  const problem = nodeContentProblem(node);
  if (problem) throw invalid(`${showName(node.name)}: ${problem}`);
}

/** Child DirectoryNodes, for walking a closure. */
export function childDigests(d: Directory): DirectoryNode[] {
  return d.directories;
}

export { b3String };
