// Ingests one store path from the filesystem in a single read pass: every
// file's bytes feed its BLAKE3 digest and the path's NAR SHA-256 at once.
// Blobs the store lacks are uploaded (Stat first, always); the path's
// Directory messages come out children first, ready for one Put stream.
//
// The walk frames the NAR itself (nar-framing.ts) and does a small file's
// work synchronously, awaiting only when the uploader has no room or a
// large file is read: per file, it allocates little beyond the file's
// node in its Directory (the async NAR writer cost several promises and
// generator objects per file, most of the copy's garbage).
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import type { Stats } from 'node:fs';
import type { Directory, DirectoryNode, FileNode, Node } from '../castore/messages.js';
import { Blake3Stream, blake3 } from '../castore/digest.js';
import { directoryDigest, directorySize, type SizeFormula } from '../castore/directory.js';
import { NarFramer } from '../nix/nar-framing.js';
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

export async function ingestPath(path: string, name: Uint8Array, opts: IngestOptions): Promise<IngestResult> {
  const hash = createHash('sha256');
  let narSize = 0;
  const nar = new NarFramer((chunk) => {
    hash.update(chunk);
    narSize += chunk.length;
  });
  const walk = new Walk(nar, opts);
  // Paths stay raw bytes: store paths may hold names that are not UTF-8.
  const rootPath = Buffer.from(path);
  const st = lstatSync(rootPath);
  nar.begin();
  let root: Node;
  if (st.isDirectory()) root = { type: 'directory', ...(await walk.directory(rootPath, name)) };
  else if (st.isFile()) root = { type: 'file', ...(await (st.size <= opts.blobs.keepInMemoryBelow ? walk.smallFile(rootPath, st, name) : walk.file(rootPath, st, name))) };
  else if (st.isSymbolicLink()) root = { type: 'symlink', name, target: walk.symlink(rootPath) };
  else throw unsupported(rootPath, st);
  nar.close();
  nar.end();
  await walk.uploads.all();
  return { root, directories: walk.directories, narSha256: hash.digest(), narSize, bytesRead: walk.bytesRead };
}

/** One path's walk: the NAR framed as files are read, blobs handed to the uploader. */
class Walk {
  readonly directories: Directory[] = [];
  readonly uploads = new PendingGroup();
  bytesRead = 0;

  constructor(
    private readonly nar: NarFramer,
    private readonly opts: IngestOptions,
  ) {}

  /** Writes the directory's node (not its closing token) and returns it once its whole subtree is in. */
  async directory(p: Buffer, name: Uint8Array): Promise<DirectoryNode> {
    const nar = this.nar;
    nar.directory();
    // Synchronous: listing, lstat and readlink of cached entries cost less
    // than the thread-pool round trips of their async forms. Names come as
    // latin1, one char per byte (lossless, and sorted bytewise as strings):
    // as Buffers Node would give each its own backing store.
    const names = readdirSync(p, { encoding: 'latin1' }).sort();
    const dir: Directory = { directories: [], files: [], symlinks: [] };
    let prev: Buffer | undefined;
    for (let i = 0; i < names.length; i++) {
      const entry = Buffer.from(names[i], 'latin1');
      nar.entry(entry, prev);
      prev = entry;
      const child = joinBytes(p, entry);
      const st = lstatSync(child);
      if (st.isFile()) {
        // An await even of a plain value suspends the walk and costs a promise: only where there is something to wait for.
        const f = st.size <= this.opts.blobs.keepInMemoryBelow ? this.smallFile(child, st, entry) : this.file(child, st, entry);
        dir.files.push(f instanceof Promise ? await f : f);
      }
      else if (st.isDirectory()) dir.directories.push(await this.directory(child, entry));
      else if (st.isSymbolicLink()) dir.symlinks.push({ name: entry, target: this.symlink(child) });
      else throw unsupported(child, st);
      nar.close(); // the node
      nar.close(); // the entry
    }
    this.directories.push(dir);
    return { name, digest: directoryDigest(dir), size: directorySize(dir, this.opts.formula) };
  }

  symlink(p: Buffer): Buffer {
    const target = Buffer.from(readlinkSync(p, { encoding: 'latin1' }), 'latin1');
    this.nar.symlink(target);
    return target;
  }

  /**
   * A file of up to keepInMemoryBelow bytes: read whole into memory the
   * uploader gives (reused, maybe shared with its thread) once it has room,
   * hashed, and handed over. Returns a promise only when it had to wait.
   */
  smallFile(p: Buffer, st: Stats, name: Uint8Array): FileNode | Promise<FileNode> {
    const blobs = this.opts.blobs;
    if (!blobs.hasRoom(st.size)) return blobs.room(st.size).then(() => this.smallFileNow(p, st, name));
    return this.smallFileNow(p, st, name);
  }

  private smallFileNow(p: Buffer, st: Stats, name: Uint8Array): FileNode {
    const blobs = this.opts.blobs;
    const executable = (st.mode & 0o100) !== 0;
    const memory = blobs.memoryFor(st.size);
    let data: Buffer;
    let digest: Buffer;
    try {
      data = readWholeSync(p, st.size, memory);
      this.nar.regular(executable, st.size);
      if (data.length > 0) this.nar.contents(data);
      this.nar.regularEnd(st.size, data.length);
      digest = blake3(data);
    } catch (err) {
      blobs.release(memory); // never handed to ensure()
      throw err;
    }
    this.bytesRead += data.length;
    this.uploads.add(blobs.ensure(digest, st.size, { bytes: data })); // awaited at the end of the path (its failure too)
    return { name, digest, size: st.size, executable };
  }

  /** A file streamed in chunks through reused buffers; the uploader reads it again if the store lacks it. */
  async file(p: Buffer, st: Stats, name: Uint8Array): Promise<FileNode> {
    const executable = (st.mode & 0o100) !== 0;
    this.nar.regular(executable, st.size);
    const hash = new Blake3Stream();
    let got = 0;
    for await (const chunk of readChunks(p, st.size)) {
      hash.update(chunk);
      this.nar.contents(chunk);
      got += chunk.length;
    }
    this.nar.regularEnd(st.size, got);
    this.bytesRead += got;
    const digest = hash.digest();
    if (!this.opts.blobs.hasRoom()) await this.opts.blobs.room();
    this.uploads.add(this.opts.blobs.ensure(digest, st.size, { file: p }));
    return { name, digest, size: st.size, executable };
  }
}

function joinBytes(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, SLASH, name]);
}
const SLASH = Buffer.from('/');

function unsupported(p: Buffer, st: Stats): IngestError {
  return new IngestError(`${p.toString()}: unsupported file type (${kindOf(st)}); only regular files, directories and symlinks can be stored`);
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'unknown';
}
