// Ingests one store path from the filesystem in a single read pass: every
// file's bytes feed its BLAKE3 digest and the path's NAR SHA-256 at once.
// Blobs the store lacks are uploaded (Stat first, always); the path's
// Directory messages come out children first, ready for one Put stream.
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import type { Directory, DirectoryNode, FileNode, Node, SymlinkNode } from '../castore/messages.js';
import { Blake3Stream, blake3 } from '../castore/digest.js';
import { directoryDigest, directorySize, type SizeFormula } from '../castore/directory.js';
import { narInto, type NarNode } from '../nix/nar.js';
import type { Uploads } from './blob-uploader.js';
import { readChunks, readWholeSync } from './file-reader.js';
import { PendingGroup } from '../util/pending-group.js';

export class IngestError extends Error {
  override name = 'IngestError';
}

export interface IngestResult {
  root: Node;
  /** Every Directory of the path, children before parents (root last). */
  directories: Directory[];
  narSha256: Buffer;
  narSize: number;
  bytesRead: number;
}

export interface IngestOptions {
  formula: SizeFormula;
  blobs: Uploads;
}

type Built = { kind: 'dir'; node: DirectoryNode } | { kind: 'file'; node: FileNode } | { kind: 'symlink'; node: SymlinkNode };

export async function ingestPath(path: string, name: Uint8Array, opts: IngestOptions): Promise<IngestResult> {
  const directories: Directory[] = [];
  const uploads = new PendingGroup();
  let bytesRead = 0;

  /** Hashes a file's bytes as the NAR writer pulls them, then queues its blob. */
  const fileNode = (p: Buffer, st: Stats, name: Uint8Array, done: (b: Built) => void, inMemory: boolean): NarNode => ({
    type: 'regular',
    executable: (st.mode & 0o100) !== 0,
    size: st.size,
    contents: async function* () {
      // Small files are read into memory the uploader gives (reused, maybe shared with its thread), once it has room.
      if (inMemory) await opts.blobs.room(st.size);
      const memory = inMemory ? opts.blobs.memoryFor(st.size) : undefined;
      let handed = false;
      try {
        let data: Buffer | undefined;
        let digest: Buffer;
        if (memory) {
          data = readWholeSync(p, st.size, memory);
          digest = blake3(data);
          bytesRead += data.length;
          if (data.length > 0) yield data;
        } else {
          const hash = new Blake3Stream();
          for await (const chunk of readChunks(p, st.size)) {
            hash.update(chunk);
            bytesRead += chunk.length;
            yield chunk;
          }
          digest = hash.digest();
        }
        if (!memory) await opts.blobs.room();
        handed = true;
        const upload = opts.blobs.ensure(digest, st.size, data ? { bytes: data } : { file: p });
        uploads.add(upload); // awaited below (its failure too)
        done({ kind: 'file', node: { name, digest, size: st.size, executable: (st.mode & 0o100) !== 0 } });
      } finally {
        if (memory && !handed) opts.blobs.release(memory); // never handed to ensure()
      }
    },
  });

  const dirNode = (p: Buffer, name: Uint8Array, done: (b: Built) => void): NarNode => ({
    type: 'directory',
    entries: async function* () {
      // Synchronous: listing, lstat and readlink of cached entries cost less
      // than the thread-pool round trips of their async forms. Names come as
      // latin1, one char per byte (lossless, and sorted bytewise as strings):
      // as Buffers Node would give each its own backing store.
      // Each child's path and Stats are made as it comes: held for the
      // whole subtree, a large directory's would outlive young collections.
      const names = readdirSync(p, { encoding: 'latin1' })
        .sort()
        .map((n) => Buffer.from(n, 'latin1'));
      const children: Built[] = [];
      for (let i = 0; i < names.length; i++) {
        const child = joinBytes(p, names[i]);
        const node = await narNodeFor(child, lstatSync(child), names[i], (b) => children.push(b));
        yield { name: names[i], node };
      }
      const dir: Directory = { directories: [], files: [], symlinks: [] };
      for (const c of children) {
        if (c.kind === 'dir') dir.directories.push(c.node);
        else if (c.kind === 'file') dir.files.push(c.node);
        else dir.symlinks.push(c.node);
      }
      directories.push(dir);
      done({ kind: 'dir', node: { name, digest: directoryDigest(dir), size: directorySize(dir, opts.formula) } });
    },
  });

  // Paths stay raw bytes: store paths may hold names that are not UTF-8.
  async function narNodeFor(p: Buffer, st: Stats, name: Uint8Array, done: (b: Built) => void): Promise<NarNode> {
    if (st.isSymbolicLink()) {
      const target = Buffer.from(readlinkSync(p, { encoding: 'latin1' }), 'latin1');
      done({ kind: 'symlink', node: { name, target } });
      return { type: 'symlink', target };
    }
    if (st.isFile()) return fileNode(p, st, name, done, st.size <= opts.blobs.keepInMemoryBelow);
    if (st.isDirectory()) return dirNode(p, name, done);
    throw new IngestError(`${p.toString()}: unsupported file type (${kindOf(st)}); only regular files, directories and symlinks can be stored`);
  }

  let root: Built | undefined;
  const hash = createHash('sha256');
  let narSize = 0;
  const rootPath = Buffer.from(path);
  const rootNar = await narNodeFor(rootPath, await lstat(rootPath), name, (b) => (root = b));
  await narInto(rootNar, (chunk) => {
    hash.update(chunk);
    narSize += chunk.length;
  });
  await uploads.all();
  if (!root) throw new IngestError(`${path}: nothing was ingested`);
  const r = root as Built;
  const node: Node = r.kind === 'dir' ? { type: 'directory', ...r.node } : r.kind === 'file' ? { type: 'file', ...r.node } : { type: 'symlink', ...r.node };
  return { root: node, directories, narSha256: hash.digest(), narSize, bytesRead };
}

function joinBytes(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, SLASH, name]);
}
const SLASH = Buffer.from('/');

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'unknown';
}
