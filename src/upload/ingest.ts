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
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import type { Dirent, Stats } from 'node:fs';
import type { Directory, DirectoryNode, FileNode, Node } from '../castore/messages.js';
import { blake3 } from '../castore/digest.js';
import { directoryDigest, directorySize, type SizeFormula } from '../castore/directory.js';
import { NarFramer } from '../nix/nar-framing.js';
import type { Uploads } from './blob-uploader.js';
import { readWholeSync } from './file-reader.js';
import { PendingGroup } from '../util/pending-group.js';
import { inlineHashing, type NarDigest, type NarHashing } from './nar-digest.js';

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
  /** Where the NAR SHA-256 is computed; default: on this thread. */
  narHashing?: NarHashing;
}

export async function ingestPath(path: string, name: Uint8Array, opts: IngestOptions): Promise<IngestResult> {
  const hash = (opts.narHashing ?? inlineHashing).begin(path);
  let narSha256: Promise<Buffer> | undefined;
  try {
    let narSize = 0;
    const nar = new NarFramer((chunk) => {
      hash.update(chunk);
      narSize += chunk.length;
    });
    const walk = new Walk(nar, hash, opts);
    // Paths stay raw bytes: store paths may hold names that are not UTF-8.
    const rootPath = Buffer.from(path);
    const st = lstatSync(rootPath);
    nar.begin();
    // Nodes are spread into the root only once every digest is in (large files' may come later).
    let node: { type: 'directory'; node: DirectoryNode } | { type: 'file'; node: FileNode } | { type: 'symlink'; target: Buffer };
    if (st.isDirectory()) node = { type: 'directory', node: await walk.directory(rootPath, name) };
    else if (st.isFile()) {
      const f = walk.anyFile(rootPath, st, name);
      node = { type: 'file', node: f instanceof Promise ? await f : f };
    } else if (st.isSymbolicLink()) node = { type: 'symlink', target: walk.symlink(rootPath) };
    else throw unsupported(rootPath, st);
    nar.close();
    nar.end();
    narSha256 = hash.digest();
    narSha256.catch(() => {}); // awaited below, after the uploads
    await walk.uploads.all();
    walk.finishDirectories();
    const root: Node = node.type === 'symlink' ? { type: 'symlink', name, target: node.target } : { type: node.type, ...node.node } as Node;
    return { root, directories: walk.directories, narSha256: await narSha256, narSize: narSize + walk.bytesReadAhead, bytesRead: walk.bytesRead };
  } finally {
    if (narSha256 === undefined) hash.abort();
  }
}

/** One path's walk: the NAR framed as files are read, blobs handed to the uploader. */
class Walk {
  readonly directories: Directory[] = [];
  readonly uploads = new PendingGroup();
  bytesRead = 0;
  /** NAR bytes the hashing thread read itself (large files): they never pass the sink. */
  bytesReadAhead = 0;
  /** Large files whose digest is not in yet; directories above them get theirs at the end. */
  private late = 0;
  private readonly deferred: { dir: Directory; node: DirectoryNode }[] = [];

  constructor(
    private readonly nar: NarFramer,
    private readonly hash: NarDigest,
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
    // With their types (d_type): a directory or symlink needs no lstat, only a file (its size and mode).
    const entries = readdirSync(p, { encoding: 'latin1', withFileTypes: true }).sort(byName);
    const dir: Directory = { directories: [], files: [], symlinks: [] };
    let prev: Buffer | undefined;
    for (let i = 0; i < entries.length; i++) {
      // Room for an entry's framing in the hashing thread's ring (if any), so writing never blocks this thread.
      if (!this.hash.hasRoom(0)) await this.hash.room(0);
      const e = entries[i];
      const entry = Buffer.from(e.name, 'latin1');
      nar.entry(entry, prev);
      prev = entry;
      const child = joinBytes(p, entry);
      if (e.isDirectory()) dir.directories.push(await this.directory(child, entry));
      else if (e.isSymbolicLink()) dir.symlinks.push({ name: entry, target: this.symlink(child) });
      else {
        // A file, or a type the listing did not give: lstat says which.
        const st = lstatSync(child);
        if (st.isFile()) {
          const f = this.anyFile(child, st, entry);
          dir.files.push(f instanceof Promise ? await f : f);
        } else if (st.isDirectory()) dir.directories.push(await this.directory(child, entry));
        else if (st.isSymbolicLink()) dir.symlinks.push({ name: entry, target: this.symlink(child) });
        else throw unsupported(child, st);
      }
      nar.close(); // the node
      nar.close(); // the entry
    }
    this.directories.push(dir);
    const node: DirectoryNode = { name, digest: LATE, size: directorySize(dir, this.opts.formula) };
    // Once one waits, so does every directory after it (its parents among them).
    if (this.late === 0 && this.deferred.length === 0) node.digest = directoryDigest(dir);
    else this.deferred.push({ dir, node });
    return node;
  }

  /** Digests of the directories that waited for large files' (children first, as they were pushed): after uploads.all(). */
  finishDirectories(): void {
    for (const { dir, node } of this.deferred) node.digest = directoryDigest(dir);
    this.deferred.length = 0;
  }

  /** A file of any size; a promise only when it had to wait (an await even of a plain value suspends the walk and costs a promise). */
  anyFile(p: Buffer, st: Stats, name: Uint8Array): FileNode | Promise<FileNode> {
    if (st.size > this.opts.blobs.keepInMemoryBelow) return this.file(p, st, name);
    if (!this.hasRoom(st.size)) return this.room(st.size).then(() => this.smallFileNow(p, st, name));
    return this.smallFileNow(p, st, name);
  }

  /**
   * Room for a small file: in the uploader's memory, and in the hashing
   * thread's ring (if any) so that writing it there never blocks. Both at
   * once: after waiting for one, the other may have filled meanwhile.
   */
  private hasRoom(size: number): boolean {
    return this.hash.hasRoom(size) && this.opts.blobs.hasRoom(size);
  }

  private async room(size: number): Promise<void> {
    for (;;) {
      if (!this.hash.hasRoom(size)) await this.hash.room(size);
      else if (!this.opts.blobs.hasRoom(size)) await this.opts.blobs.room(size);
      else return;
    }
  }

  symlink(p: Buffer): Buffer {
    const target = Buffer.from(readlinkSync(p, { encoding: 'latin1' }), 'latin1');
    this.nar.symlink(target);
    return target;
  }

  /**
   * A file of up to keepInMemoryBelow bytes, once there is room (anyFile):
   * read whole into memory the uploader gives (reused, maybe shared with
   * its thread), hashed, and handed over.
   */
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

  /**
   * A large file, read where its bytes go into the NAR hash (NarDigest.file:
   * on the hashing thread, if there is one, while the walk goes on); the
   * uploader reads it again if the store lacks it.
   */
  async file(p: Buffer, st: Stats, name: Uint8Array): Promise<FileNode> {
    const executable = (st.mode & 0o100) !== 0;
    this.nar.regular(executable, st.size);
    this.nar.flush();
    const node: FileNode = { name, digest: LATE, size: st.size, executable };
    const digest = this.hash.file(p, st.size);
    this.nar.regularEnd(st.size, st.size);
    this.bytesRead += st.size;
    this.bytesReadAhead += st.size;
    const blobs = this.opts.blobs;
    if (this.hash.readsAhead) {
      this.late++;
      this.uploads.add(
        digest.then(async (d) => {
          node.digest = d;
          this.late--;
          if (!blobs.hasRoom()) await blobs.room();
          return blobs.ensure(d, st.size, { file: p });
        }),
      );
      return node;
    }
    const d = await digest;
    node.digest = d;
    if (!blobs.hasRoom()) await blobs.room();
    this.uploads.add(blobs.ensure(d, st.size, { file: p }));
    return node;
  }
}

/** Bytewise (latin1 names: one char per byte), as NAR entries are sorted. */
function byName(a: Dirent, b: Dirent): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** A digest not known yet (a large file's from the hashing thread, the directories above it). */
const LATE = Buffer.alloc(0);

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
