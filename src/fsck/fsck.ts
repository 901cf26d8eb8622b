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
import { readdir, stat } from 'node:fs/promises';
import { forEachLimit, iterate } from '../util/for-each-limit.js';
import { checkPacks } from './pack-check.js';
import { DiskCheckState } from './disk-state.js';
import { DiskListing, HEX40, HEX64 } from './disk-listing.js';
import { BlobChecks } from './disk-blob-checks.js';
import { DirectoryChecks } from './disk-directory-checks.js';
import { PathInfoChecks } from './disk-pathinfo-checks.js';
import { message, type FsckCounts, type FsckOptions } from './report.js';

export type { Finding, FindingKind, FsckCounts, FsckOptions } from './report.js';
export { formatBytes, message } from './report.js';

export class StoreChecker {
  private readonly s: DiskCheckState;
  private readonly listing: DiskListing;
  private readonly blobChecks: BlobChecks;
  private readonly dirChecks: DirectoryChecks;
  private readonly pathInfoChecks: PathInfoChecks;

  constructor(root: string, opts: FsckOptions = {}) {
    this.s = new DiskCheckState(root, opts);
    this.listing = new DiskListing(this.s);
    this.blobChecks = new BlobChecks(this.s);
    this.dirChecks = new DirectoryChecks(this.s, this.blobChecks);
    this.pathInfoChecks = new PathInfoChecks(this.s, this.blobChecks, this.dirChecks);
  }

  get root(): string {
    return this.s.root;
  }

  get counts(): FsckCounts {
    return this.s.counts;
  }

  /** Whether references went to scratch files (for tests). */
  get spilled(): boolean {
    return this.s.blobRefs.spilled || this.s.dirRefs.spilled;
  }

  async run(): Promise<FsckCounts> {
    const st = await stat(this.s.root).catch((err) => {
      throw new Error(`cannot read the store at ${this.s.root}: ${message(err)}`);
    });
    if (!st.isDirectory()) throw new Error(`${this.s.root} is not a directory`);
    // Files, but none of a store's own (a binary cache, a parent directory): not a store found clean. Empty: a fresh store.
    const own = ['blobs', 'packs', 'directory-packs', 'directories', 'pathinfo', 'gc', 'tmp', 'access'];
    const names = await readdir(this.s.root);
    if (names.length > 0 && !names.some((n) => own.includes(n))) throw new Error(`${this.s.root} holds no castore (none of ${own.join('/, ')}/)`);
    try {
      await this.listing.checkTemps();
      await forEachLimit(this.listing.objects('blobs', HEX64), this.s.concurrency, (o) => this.blobChecks.check(o.name, o.rel));
      this.s.packBlobs = await checkPacks(this.s.root, { folder: 'packs', noun: 'blob' }, {
        error: (object, msg) => this.s.report('error', 'blob', object, msg),
        warning: (object, msg) => this.s.report('warning', 'pack', object, msg),
        found: (_hex, length) => {
          this.s.counts.blobs++;
          this.s.counts.blobBytes += length;
        },
        corrupt: (hex) => this.s.corruptPacked.add(hex),
      });
      // Packed directories' records first, so that a parent's check knows a corrupt child.
      await checkPacks(this.s.root, { folder: 'directory-packs', noun: 'directory' }, {
        error: (object, msg) => this.s.report('error', 'directory', object, msg),
        warning: (object, msg) => this.s.report('warning', 'pack', object, msg),
        found: (hex, _length, where) => void this.s.packDirs.set(hex, where),
        corrupt: (hex) => {
          this.s.counts.directories++;
          this.s.badDirs.set(hex, 'corrupt');
          this.s.corruptPackedDirs.add(hex);
        },
      });
      await forEachLimit(this.listing.objects('directories', HEX64), this.s.concurrency, (o) => this.dirChecks.check(o.name, o.rel));
      await forEachLimit(iterate(this.s.packDirs), this.s.concurrency, ([hex, where]) => this.dirChecks.check(hex, where));
      await forEachLimit(this.listing.objects('pathinfo', HEX40), this.s.concurrency, (o) => this.pathInfoChecks.check(o.name, o.rel));
      await this.listing.countOrphans('blobs', this.s.blobRefs, (n) => (this.s.counts.orphanedBlobs += n));
      await this.listing.countOrphans('directories', this.s.dirRefs, (n) => (this.s.counts.orphanedDirectories += n));
    } finally {
      await Promise.all([this.s.blobRefs.dispose(), this.s.dirRefs.dispose(), this.s.castore.blobs.close(), this.s.castore.directories.close(), this.s.dirPacks.close()]);
    }
    return this.s.counts;
  }
}

/** Checks the store at `root`; see the top of this file. */
export function fsck(root: string, opts: FsckOptions = {}): Promise<FsckCounts> {
  return new StoreChecker(root, opts).run();
}
