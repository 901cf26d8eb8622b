// Consistency check of an on-disk (`file://`) store, read-only:
//
//   1. blobs        every file hashes (BLAKE3, streamed) to its name; every
//                   packed blob hashes to its index entry (pack-check.ts)
//   2. directories  every file and packed record decodes, validates, is
//                   canonically encoded and hashes to its name; its child directories exist with a
//                   size matching either DirectoryNode.size formula, and its
//                   files' blobs exist, are sound and have the stated size
//   3. PathInfos    every file decodes, validates and is stored under its
//                   store path's digest; its root exists with a complete
//                   closure (and, with `nar`, renders to the NAR its narinfo
//                   records)
//   4. orphans      blobs and directories nothing refers to are counted
//                   (they are harmless), temp files of dead processes are
//                   warned about
//
// Shard directories are listed one at a time and objects checked a few at
// a time; references go to a DigestSpill, so memory stays bounded however
// large the store. Problems are handed to `onFinding` as they are found.
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Blake3Stream, blake3, b3Hex } from '../castore/digest.js';
import { readDirectory, type Directory } from '../castore/messages.js';
import { directorySize, encodeDirectory, showName, validateDirectory } from '../castore/directory.js';
import { DiskLayout, type ObjectKind } from '../castore/disk/disk-layout.js';
import { DiskBlobService } from '../castore/disk/disk-blob-service.js';
import { DiskDirectoryService } from '../castore/disk/disk-directory-service.js';
import { PackStore } from '../castore/disk/pack-store.js';
import { readAhead } from '../castore/disk/read-ahead.js';
import { PathInfoCodec, type PathInfo } from '../store/messages.js';
import { validatePathInfo } from '../store/validate-pathinfo.js';
import { calculateNar, type Castore } from '../store/render-nar.js';
import { absolute } from '../nix/store-path.js';
import { formatNix32 } from '../nix/hash.js';
import { DigestSpill } from './digest-spill.js';
import { checkPacks } from './pack-check.js';

/** `object`: an S3 object of a scale-out store (see scaleout-fsck.ts). */
export type FindingKind = 'blob' | 'directory' | 'pathinfo' | 'tmp' | 'layout' | 'pack' | 'object';

export interface Finding {
  severity: 'error' | 'warning';
  kind: FindingKind;
  /** The object's file, relative to the store directory (scale-out: its S3 key below the prefix, or table/key). */
  object: string;
  message: string;
}

export interface FsckCounts {
  blobs: number;
  blobBytes: number;
  directories: number;
  pathInfos: number;
  /** NARs rendered and compared (with `nar`). */
  nars: number;
  narBytes: number;
  orphanedBlobs: number;
  orphanedDirectories: number;
  tempFilesInProgress: number;
  tempFilesLeftOver: number;
  errors: number;
  warnings: number;
}

export interface FsckOptions {
  /** Render every PathInfo's NAR and compare it with the recorded hash and size. */
  nar?: boolean;
  /** Objects checked at once (default 8). */
  concurrency?: number;
  /** NARs rendered at once (default 2). */
  narConcurrency?: number;
  /** References held in memory per kind before they spill to scratch files (default 16 MiB). */
  spillLimitBytes?: number;
  /** Where scratch files go (default the OS temp directory). */
  scratchDir?: string;
  onFinding?(f: Finding): void;
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX40 = /^[0-9a-f]{40}$/;
const SIZE_CACHE_ENTRIES = 100_000;

export type Sizes = [head: number, legacy: number];
/** What fsck knows about a directory as a child: its sizes, or why it cannot be used. */
export type ChildState = Sizes | 'missing' | 'corrupt';

/** A layout that never creates directories nor sweeps temp files: fsck only reads. */
class ReadOnlyLayout extends DiskLayout {
  override init(): Promise<void> {
    return Promise.resolve();
  }
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs `fn` over `items` with at most `limit` at once. */
export async function forEachLimit<T>(items: AsyncIterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.asyncIterator]();
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed) {
      const r = await it.next(); // async generators queue concurrent next() calls
      if (r.done) return;
      try {
        await fn(r.value);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

export class Semaphore {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errno(err) === 'EPERM';
  }
}

export class StoreChecker {
  readonly counts: FsckCounts = {
    blobs: 0,
    blobBytes: 0,
    directories: 0,
    pathInfos: 0,
    nars: 0,
    narBytes: 0,
    orphanedBlobs: 0,
    orphanedDirectories: 0,
    tempFilesInProgress: 0,
    tempFilesLeftOver: 0,
    errors: 0,
    warnings: 0,
  };
  private readonly layout: DiskLayout;
  private readonly castore: Castore;
  private readonly concurrency: number;
  private readonly narLimit: Semaphore;
  /** Blobs whose content does not hash to their name (or cannot be read). Few: one per problem. */
  private readonly corruptBlobs = new Set<string>();
  /** Sound packed blobs and their lengths; packed blobs with no sound copy. */
  private packBlobs = new Map<string, number>();
  /** Sound packed directories: where each was found. */
  private readonly packDirs = new Map<string, string>();
  private readonly corruptPackedDirs = new Set<string>();
  private readonly dirPacks: PackStore;
  private readonly corruptPacked = new Set<string>();
  /** Directories with a problem of their own, and why; missing ones that something refers to as well. */
  private readonly badDirs = new Map<string, string>();
  /** Recently looked-up directories as children: a bounded cache (insertion order = age). */
  private readonly childCache = new Map<string, ChildState>();
  private readonly blobRefs: DigestSpill;
  private readonly dirRefs: DigestSpill;

  constructor(
    readonly root: string,
    private readonly opts: FsckOptions = {},
  ) {
    this.layout = new ReadOnlyLayout(root);
    this.castore = { blobs: new DiskBlobService(this.layout), directories: new DiskDirectoryService(this.layout) };
    this.dirPacks = new PackStore(join(this.root, 'directory-packs'));
    this.concurrency = Math.max(1, opts.concurrency ?? 8);
    this.narLimit = new Semaphore(Math.max(1, opts.narConcurrency ?? 2));
    this.blobRefs = new DigestSpill('blobs', opts.spillLimitBytes, opts.scratchDir);
    this.dirRefs = new DigestSpill('directories', opts.spillLimitBytes, opts.scratchDir);
  }

  /** Whether references went to scratch files (for tests). */
  get spilled(): boolean {
    return this.blobRefs.spilled || this.dirRefs.spilled;
  }

  async run(): Promise<FsckCounts> {
    const st = await stat(this.root).catch((err) => {
      throw new Error(`cannot read the store at ${this.root}: ${message(err)}`);
    });
    if (!st.isDirectory()) throw new Error(`${this.root} is not a directory`);
    try {
      await this.checkTemps();
      await forEachLimit(this.objects('blobs', HEX64), this.concurrency, (o) => this.checkBlob(o.name, o.rel));
      this.packBlobs = await checkPacks(this.root, { folder: 'packs', noun: 'blob' }, {
        error: (object, msg) => this.report('error', 'blob', object, msg),
        warning: (object, msg) => this.report('warning', 'pack', object, msg),
        found: (_hex, length) => {
          this.counts.blobs++;
          this.counts.blobBytes += length;
        },
        corrupt: (hex) => this.corruptPacked.add(hex),
      });
      // Packed directories' records first, so that a parent's check knows a corrupt child.
      await checkPacks(this.root, { folder: 'directory-packs', noun: 'directory' }, {
        error: (object, msg) => this.report('error', 'directory', object, msg),
        warning: (object, msg) => this.report('warning', 'pack', object, msg),
        found: (hex, _length, where) => void this.packDirs.set(hex, where),
        corrupt: (hex) => {
          this.counts.directories++;
          this.badDirs.set(hex, 'corrupt');
          this.corruptPackedDirs.add(hex);
        },
      });
      await forEachLimit(this.objects('directories', HEX64), this.concurrency, (o) => this.checkDirectory(o.name, o.rel));
      await forEachLimit(iterate(this.packDirs), this.concurrency, ([hex, where]) => this.checkDirectory(hex, where));
      await forEachLimit(this.objects('pathinfo', HEX40), this.concurrency, (o) => this.checkPathInfo(o.name, o.rel));
      await this.countOrphans('blobs', this.blobRefs, (n) => (this.counts.orphanedBlobs += n));
      await this.countOrphans('directories', this.dirRefs, (n) => (this.counts.orphanedDirectories += n));
    } finally {
      await Promise.all([this.blobRefs.dispose(), this.dirRefs.dispose(), this.castore.blobs.close(), this.castore.directories.close(), this.dirPacks.close()]);
    }
    return this.counts;
  }

  private report(severity: Finding['severity'], kind: FindingKind, object: string, msg: string): void {
    if (severity === 'error') this.counts.errors++;
    else this.counts.warnings++;
    this.opts.onFinding?.({ severity, kind, object, message: msg });
  }

  private rel(kind: ObjectKind, hex: string): string {
    return `${kind}/${hex.slice(0, 2)}/${hex}`;
  }

  /**
   * The well-named objects of one kind, shard by shard (sorted). Anything
   * else in the tree is warned about and skipped: the store never looks at it.
   */
  private async *objects(kind: ObjectKind, pattern: RegExp, warn = true): AsyncGenerator<{ name: string; rel: string }> {
    const base = this.layout.kindDir(kind);
    let shards;
    try {
      shards = (await readdir(base, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    } catch (err) {
      if (errno(err) === 'ENOENT') return; // an empty store
      throw err;
    }
    for (const shard of shards) {
      if (!shard.isDirectory() || !/^[0-9a-f]{2}$/.test(shard.name)) {
        if (warn) this.report('warning', 'layout', `${kind}/${shard.name}`, 'unexpected entry (not a shard directory); the store ignores it');
        continue;
      }
      let entries;
      try {
        entries = await readdir(join(base, shard.name), { withFileTypes: true });
      } catch (err) {
        if (errno(err) === 'ENOENT') continue;
        throw err;
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : 1));
      for (const e of entries) {
        const rel = `${kind}/${shard.name}/${e.name}`;
        if (!pattern.test(e.name) || !e.name.startsWith(shard.name) || !e.isFile()) {
          if (warn) {
            const why = !e.isFile() ? 'not a regular file' : !pattern.test(e.name) ? 'not an object name' : 'in the wrong shard';
            this.report('warning', 'layout', rel, `unexpected entry (${why}); the store ignores it`);
          }
          continue;
        }
        yield { name: e.name, rel };
      }
    }
  }

  private async checkTemps(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.layout.tmp)).sort();
    } catch (err) {
      if (errno(err) === 'ENOENT') return;
      throw err;
    }
    for (const name of names) {
      const pid = Number(name.split('-')[0]);
      if (/^\d+-/.test(name) && pid !== process.pid && isAlive(pid)) {
        this.counts.tempFilesInProgress++;
        continue;
      }
      this.counts.tempFilesLeftOver++;
      const size = await stat(join(this.layout.tmp, name)).then(
        (s) => `${s.size} bytes`,
        () => 'gone meanwhile',
      );
      const who = /^\d+-/.test(name) ? `left by process ${pid}, which is not running` : 'not named after a process';
      this.report('warning', 'tmp', `tmp/${name}`, `${who} (${size}); the daemon removes it when it next starts`);
    }
  }

  // ---- blobs ----

  private async checkBlob(hex: string, rel: string): Promise<void> {
    let h;
    try {
      h = await open(join(this.root, rel), 'r');
    } catch (err) {
      if (errno(err) === 'ENOENT') return;
      this.corruptBlobs.add(hex);
      this.report('error', 'blob', rel, `unreadable: ${message(err)}`);
      return;
    }
    const hash = new Blake3Stream();
    let size = 0;
    try {
      for await (const chunk of readAhead(h)) {
        hash.update(chunk);
        size += chunk.length;
      }
    } catch (err) {
      this.corruptBlobs.add(hex);
      this.report('error', 'blob', rel, `unreadable: ${message(err)}`);
      return;
    } finally {
      await h.close();
    }
    this.counts.blobs++;
    this.counts.blobBytes += size;
    const got = b3Hex(hash.digest());
    if (got !== hex) {
      this.corruptBlobs.add(hex);
      this.report('error', 'blob', rel, `content (${size} bytes) hashes to ${got}, not to its name`);
    }
  }

  /** Why the blob a FileNode names cannot serve it, if it cannot. */
  private async blobProblem(digest: Uint8Array, size: number): Promise<string | undefined> {
    if (digest.length !== 32) return `invalid digest length ${digest.length}`;
    const hex = b3Hex(digest);
    let st;
    try {
      st = await stat(join(this.root, this.rel('blobs', hex)));
    } catch (err) {
      if (errno(err) !== 'ENOENT') return `blob ${hex} cannot be read: ${message(err)}`;
      const packed = this.packBlobs.get(hex);
      if (packed === undefined) return this.corruptPacked.has(hex) ? `blob ${hex} is corrupt` : `blob ${hex} is missing`;
      return packed === size ? undefined : `the entry says ${size} bytes but blob ${hex} has ${packed}`;
    }
    if (st.size !== size) return `the entry says ${size} bytes but blob ${hex} has ${st.size}`;
    if (this.corruptBlobs.has(hex)) return `blob ${hex} is corrupt`;
    return undefined;
  }

  // ---- directories ----

  /** Reads a directory file: bytes, decoded form, or what is wrong with it. */
  private async loadDirectory(hex: string): Promise<{ bytes: Buffer; dir?: Directory; problem?: string } | undefined> {
    let bytes: Buffer | undefined;
    try {
      bytes = await readFile(join(this.root, this.rel('directories', hex)));
    } catch (err) {
      if (errno(err) !== 'ENOENT') return { bytes: Buffer.alloc(0), problem: `unreadable: ${message(err)}` };
    }
    if (!bytes) {
      if (this.corruptPackedDirs.has(hex)) return { bytes: Buffer.alloc(0), problem: 'its packed record is corrupt' };
      try {
        bytes = await this.dirPacks.read(hex);
      } catch (err) {
        return { bytes: Buffer.alloc(0), problem: `unreadable: ${message(err)}` };
      }
      if (!bytes) return undefined;
    }
    return { bytes, ...examineDirectory(hex, bytes) };
  }

  private remember(hex: string, state: ChildState): ChildState {
    if (this.childCache.size >= SIZE_CACHE_ENTRIES) this.childCache.delete(this.childCache.keys().next().value!);
    this.childCache.set(hex, state);
    return state;
  }

  private async childState(hex: string): Promise<ChildState> {
    const known = this.childCache.get(hex);
    if (known) return known;
    const d = await this.loadDirectory(hex);
    if (!d) return this.remember(hex, 'missing');
    if (d.problem || !d.dir) return this.remember(hex, 'corrupt');
    return this.remember(hex, sizesOf(d.dir));
  }

  private async checkDirectory(hex: string, rel: string): Promise<void> {
    const d = await this.loadDirectory(hex);
    if (!d) return; // gone meanwhile
    this.counts.directories++;
    if (d.problem || !d.dir) {
      this.badDirs.set(hex, d.problem ?? 'unreadable');
      this.remember(hex, 'corrupt');
      this.report('error', 'directory', rel, d.problem ?? 'unreadable');
      return;
    }
    const dir = d.dir;
    this.remember(hex, sizesOf(dir));
    for (const c of dir.directories) await this.dirRefs.add(c.digest);
    for (const f of dir.files) await this.blobRefs.add(f.digest);
    const problems: string[] = [];
    for (const c of dir.directories) {
      const childHex = b3Hex(c.digest);
      const state = await this.childState(childHex);
      if (state === 'missing') {
        this.badDirs.set(childHex, 'missing');
        problems.push(`directory ${showName(c.name)} refers to ${childHex}, which is missing`);
      } else if (state !== 'corrupt' && !state.includes(c.size)) {
        problems.push(`directory ${showName(c.name)} says size ${c.size}, but ${childHex} has size ${state[0]} (or ${state[1]} by the older formula)`);
      }
      // A corrupt child is reported as itself.
    }
    for (const f of dir.files) {
      const p = await this.blobProblem(f.digest, f.size);
      if (p) problems.push(`file ${showName(f.name)}: ${p}`);
    }
    if (problems.length > 0) {
      this.badDirs.set(hex, problems[0]);
      for (const p of problems) this.report('error', 'directory', rel, p);
    }
  }

  // ---- PathInfos ----

  private async checkPathInfo(hex: string, rel: string): Promise<void> {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.root, rel));
    } catch (err) {
      if (errno(err) === 'ENOENT') return;
      this.report('error', 'pathinfo', rel, `unreadable: ${message(err)}`);
      return;
    }
    this.counts.pathInfos++;
    const e = examinePathInfo(bytes);
    if ('problem' in e) {
      this.report('error', 'pathinfo', rel, e.problem);
      return;
    }
    const { info, path, key } = e;
    if (key !== hex) {
      this.report('error', 'pathinfo', rel, `holds the PathInfo of ${path}, which belongs under ${this.rel('pathinfo', key)}`);
      return;
    }
    const node = info.node!;
    let problem: string | undefined;
    if (node.type === 'file') {
      await this.blobRefs.add(node.digest);
      const p = await this.blobProblem(node.digest, node.size);
      if (p) problem = `root file: ${p}`;
    } else if (node.type === 'directory') {
      await this.dirRefs.add(node.digest);
      problem = await this.closureProblem(node.digest, node.size);
    }
    if (problem) {
      this.report('error', 'pathinfo', rel, `${path}: ${problem}`);
      return;
    }
    if (this.opts.nar) await this.narLimit.run(() => this.checkNar(info, path, rel));
  }

  /** Why the directory closure under a root is not complete and sound, if it is not. */
  private async closureProblem(digest: Uint8Array, size: number): Promise<string | undefined> {
    const rootHex = b3Hex(digest);
    const state = await this.childState(rootHex);
    if (state === 'missing') return `root directory ${rootHex} is missing`;
    if (state === 'corrupt') return `root directory ${rootHex} is corrupt`;
    if (!state.includes(size)) return `root node says size ${size}, but ${rootHex} has size ${state[0]} (or ${state[1]} by the older formula)`;
    // Every directory on disk was checked with its children and blobs, so a
    // closure can only be broken where a bad directory lies; walk it only
    // when there are any.
    if (this.badDirs.size === 0) return undefined;
    const seen = new Set<string>([rootHex]);
    const queue: { hex: string; at: string }[] = [{ hex: rootHex, at: '' }];
    let first: string | undefined;
    let bad = 0;
    while (queue.length > 0) {
      const { hex, at } = queue.shift()!;
      const why = this.badDirs.get(hex);
      const where = at ? `at ${JSON.stringify(at)}` : 'at the root';
      if (why) {
        bad++;
        first ??= `directory ${hex} ${where}: ${why}`;
        continue;
      }
      const d = await this.loadDirectory(hex);
      if (!d || d.problem || !d.dir) {
        bad++;
        first ??= `directory ${hex} ${where}: ${d ? d.problem : 'missing'}`;
        continue;
      }
      for (const c of d.dir.directories) {
        const h = b3Hex(c.digest);
        if (seen.has(h)) continue;
        seen.add(h);
        queue.push({ hex: h, at: at ? `${at}/${Buffer.from(c.name).toString('latin1')}` : Buffer.from(c.name).toString('latin1') });
      }
    }
    if (!first) return undefined;
    return `directory closure incomplete: ${first}${bad > 1 ? ` (and ${bad - 1} more bad directories)` : ''}`;
  }

  private async checkNar(info: PathInfo, path: string, rel: string): Promise<void> {
    const problem = await narMismatch(info, this.castore, path, this.counts);
    if (problem) this.report('error', 'pathinfo', rel, problem);
  }

  // ---- orphans ----

  private async countOrphans(kind: ObjectKind, refs: DigestSpill, add: (n: number) => void): Promise<void> {
    let shard = '';
    let known = new Set<string>();
    for await (const o of this.objects(kind, HEX64, false)) {
      const s = o.name.slice(0, 2);
      if (s !== shard) {
        shard = s;
        known = await refs.bucket(parseInt(s, 16));
      }
      if (!known.has(o.name)) add(1);
    }
    const byBucket = new Map<number, string[]>();
    for (const hex of kind === 'blobs' ? this.packBlobs.keys() : this.packDirs.keys()) {
      const b = parseInt(hex.slice(0, 2), 16);
      let list = byBucket.get(b);
      if (!list) byBucket.set(b, (list = []));
      list.push(hex);
    }
    for (const [b, hexes] of [...byBucket].sort((x, y) => x[0] - y[0])) {
      const known = await refs.bucket(b);
      add(hexes.filter((h) => !known.has(h)).length);
    }
  }
}

/** Renders the NAR of `info` and compares it with its narinfo: what is wrong, or undefined. */
export async function narMismatch(info: PathInfo, castore: Castore, path: string, counts: Pick<FsckCounts, 'nars' | 'narBytes'>): Promise<string | undefined> {
  const ni = info.narinfo!;
  let got;
  try {
    got = await calculateNar(info.node!, castore);
  } catch (err) {
    return `${path}: the NAR cannot be rendered: ${message(err)}`;
  }
  counts.nars++;
  counts.narBytes += got.narSize;
  if (got.narSize === ni.narSize && got.narSha256.equals(Buffer.from(ni.narSha256))) return undefined;
  return (
    `${path}: the NAR renders to ${got.narSize} bytes, ${formatNix32(got.narSha256)}; ` +
    `the narinfo records ${ni.narSize} bytes, ${formatNix32(ni.narSha256)}`
  );
}

export function sizesOf(dir: Directory): Sizes {
  return [directorySize(dir, 'head'), directorySize(dir, 'legacy')];
}

/**
 * A stored directory's bytes, decoded, or what is wrong with them: they must
 * decode, hash to `hex` (the name they are stored under; `noun` says what
 * that is), validate and be canonically encoded.
 */
export function examineDirectory(hex: string, bytes: Buffer, noun = 'name'): { dir?: Directory; problem?: string } {
  let dir: Directory;
  try {
    dir = readDirectory(bytes);
  } catch (err) {
    return { problem: `does not decode as a Directory: ${message(err)}` };
  }
  const got = b3Hex(blake3(bytes));
  if (got !== hex) return { dir, problem: `content (${bytes.length} bytes) hashes to ${got}, not to its ${noun}` };
  try {
    validateDirectory(dir);
  } catch (err) {
    return { dir, problem: `invalid Directory: ${message(err)}` };
  }
  if (!encodeDirectory(dir).equals(bytes)) return { dir, problem: 'not in the canonical encoding' };
  return { dir };
}

/** A stored PathInfo decoded and validated, with the key (hex store path digest) it belongs under; or what is wrong. */
export function examinePathInfo(bytes: Buffer): { info: PathInfo; path: string; key: string } | { problem: string } {
  let info: PathInfo;
  try {
    info = PathInfoCodec.decode(bytes);
  } catch (err) {
    return { problem: `does not decode as a PathInfo: ${message(err)}` };
  }
  try {
    const sp = validatePathInfo(info);
    return { info, path: absolute(sp), key: Buffer.from(sp.digest).toString('hex') };
  } catch (err) {
    return { problem: message(err) };
  }
}

/** Checks the store at `root`; see the top of this file. */
export function fsck(root: string, opts: FsckOptions = {}): Promise<FsckCounts> {
  return new StoreChecker(root, opts).run();
}

/** "1.5 MiB" */
export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[i]}`;
}

async function* iterate<T>(items: Iterable<T>): AsyncGenerator<T> {
  yield* items;
}
