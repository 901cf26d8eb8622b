// The state the checks of an on-disk store share: counts, findings, what
// is known to be corrupt or missing, references seen so far.
import { join } from 'node:path';
import { DiskLayout, type ObjectKind } from '../castore/disk/disk-layout.js';
import { DiskBlobService } from '../castore/disk/disk-blob-service.js';
import { DiskDirectoryService } from '../castore/disk/disk-directory-service.js';
import { PackStore } from '../castore/disk/pack-store.js';
import type { Castore } from '../store/render-nar.js';
import { Semaphore } from '../util/for-each-limit.js';
import { DigestSpill } from '../util/digest-spill.js';
import type { ChildState } from './examine.js';
import { newCounts, type Finding, type FindingKind, type FsckCounts, type FsckOptions } from './report.js';

/** A layout that never creates directories nor sweeps temp files: fsck only reads. */
class ReadOnlyLayout extends DiskLayout {
  override init(): Promise<void> {
    return Promise.resolve();
  }
}

export function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

export class DiskCheckState {
  readonly counts: FsckCounts = newCounts();
  readonly layout: DiskLayout;
  readonly castore: Castore;
  readonly concurrency: number;
  readonly narLimit: Semaphore;
  /** Blobs whose content does not hash to their name (or cannot be read). Few: one per problem. */
  readonly corruptBlobs = new Set<string>();
  /** Sound packed blobs and their lengths; packed blobs with no sound copy. */
  packBlobs = new Map<string, number>();
  /** Sound packed directories: where each was found. */
  readonly packDirs = new Map<string, string>();
  readonly corruptPackedDirs = new Set<string>();
  readonly dirPacks: PackStore;
  readonly corruptPacked = new Set<string>();
  /** Directories with a problem of their own, and why; missing ones that something refers to as well. */
  readonly badDirs = new Map<string, string>();
  /** Recently looked-up directories as children: a bounded cache (insertion order = age). */
  readonly childCache = new Map<string, ChildState>();
  readonly blobRefs: DigestSpill;
  readonly dirRefs: DigestSpill;

  constructor(
    readonly root: string,
    readonly opts: FsckOptions = {},
  ) {
    this.layout = new ReadOnlyLayout(root);
    this.castore = { blobs: new DiskBlobService(this.layout), directories: new DiskDirectoryService(this.layout) };
    this.dirPacks = new PackStore(join(this.root, 'directory-packs'));
    this.concurrency = Math.max(1, opts.concurrency ?? 8);
    this.narLimit = new Semaphore(Math.max(1, opts.narConcurrency ?? 2));
    this.blobRefs = new DigestSpill('blobs', opts.spillLimitBytes, opts.scratchDir);
    this.dirRefs = new DigestSpill('directories', opts.spillLimitBytes, opts.scratchDir);
  }

  report(severity: Finding['severity'], kind: FindingKind, object: string, msg: string): void {
    if (severity === 'error') this.counts.errors++;
    else this.counts.warnings++;
    this.opts.onFinding?.({ severity, kind, object, message: msg });
  }

  rel(kind: ObjectKind, hex: string): string {
    return `${kind}/${hex.slice(0, 2)}/${hex}`;
  }
}
