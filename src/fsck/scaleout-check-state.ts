// What the checks of a scale-out store share: options, counts, findings,
// the S3 client and the read-only database pool, what is known to be bad.
import pg from 'pg';
import { CastoreError } from '../castore/errors.js';
import { parseS3Addr, type S3Location } from '../scaleout/addr.js';
import type { Location } from '../scaleout/blob-codec.js';
import { S3Objects } from '../scaleout/s3-objects.js';
import type { PathInfo } from '../store/messages.js';
import { DigestSpill } from '../util/digest-spill.js';
import { type ChildState } from './examine.js';
import { Semaphore } from '../util/for-each-limit.js';
import { message, type Finding, type FindingKind } from './report.js';

export interface ScaleoutFsckCounts {
  /** S3 objects under the prefix, and their bytes. */
  objects: number;
  objectBytes: number;
  /** Blob index rows, and the bytes they span. */
  blobs: number;
  blobBytes: number;
  /** Blobs whose bytes were read and hashed (with `verifyBlobs`), and the bytes read from S3 for that. */
  verifiedBlobs: number;
  verifiedBytes: number;
  directories: number;
  pathInfos: number;
  /** NARs rendered and compared (with `nar`). */
  nars: number;
  narBytes: number;
  /** Objects no index row refers to (warnings), and their bytes. */
  orphanedObjects: number;
  orphanedObjectBytes: number;
  /** Packs a collection's rewrite retired, kept until retired for --grace (not a problem), and their bytes. */
  retiredPacks: number;
  retiredPackBytes: number;
  /** Bytes of referenced objects that no index row covers (a pack some of whose blobs another writer indexed first). */
  deadBytes: number;
  /** Multipart uploads under the prefix never completed nor aborted (warnings), and the bytes of their parts. */
  unfinishedUploads: number;
  unfinishedUploadBytes: number;
  orphanedBlobs: number;
  orphanedDirectories: number;
  errors: number;
  warnings: number;
}

export interface ScaleoutFsckOptions {
  /** Read every object and hash every indexed blob. */
  verifyBlobs?: boolean;
  /** Render every PathInfo's NAR and compare it with the recorded hash and size. */
  nar?: boolean;
  /** Objects read at once with `verifyBlobs` (default 8). */
  concurrency?: number;
  /** NARs rendered at once (default 2). */
  narConcurrency?: number;
  /** Rows per page of the directory and PathInfo scans (default 500). */
  pageRows?: number;
  /** References held in memory per kind before they spill to scratch files (default 16 MiB). */
  spillLimitBytes?: number;
  scratchDir?: string;
  onFinding?(f: Finding): void;
}

export const SIZE_CACHE_ENTRIES = 100_000;
/** Objects per page of the grouped blob index scan. */
export const OBJECT_PAGE = 1000;
/**
 * Keys per lookup. Lookups probe the table's index key by key (keyLookup in
 * scaleout/pg-digests.ts): `= ANY($1)` or a join with a thousand keys may
 * make PostgreSQL scan the whole table (4x slower at 160k rows, and worse
 * the bigger the table).
 */
export const LOOKUP_BATCH = 1000;
/** Digests per page of the orphan count. */
export const DIGEST_PAGE = 10_000;
/** Offending rows quoted per problem. */
export const EXAMPLES = 3;

/** A PostgreSQL URL with its password replaced by `***`. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@').replace(/([?&]password=)[^&]*/i, '$1***');
}

/** How a scale-out store is named in fsck's output: its bucket/prefix (and endpoint), and its database. */
export function describeScaleout(addr: string): { store: string; index: string } {
  const loc = parseS3Addr(addr);
  return { store: `s3://${loc.bucket}/${loc.prefix}${loc.endpoint ? ` at ${loc.endpoint}` : ''}`, index: redactUrl(loc.indexUrl) };
}

/** Where a blob is and how it is stored (`length`: raw bytes; `stored`: bytes in the object, less when compressed). */
export type BlobRow = Location & { stored: number };

export interface ObjectGroup {
  object: string;
  rows: number;
  /** Raw bytes of its blobs. */
  bytes: number;
  /** Bytes they take in the object (less when compressed). */
  stored: number;
  end: number;
  badRows: number;
}

/**
 * The listed objects: key → size, and whether an index row refers to it,
 * packed into one number (size·2 + referenced) to keep memory to one map.
 */
export class ObjectTable {
  private readonly m = new Map<string, number>();
  get count(): number {
    return this.m.size;
  }
  set(object: string, size: number, referenced = false): void {
    this.m.set(object, size * 2 + (referenced ? 1 : 0));
  }
  size(object: string): number | undefined {
    const v = this.m.get(object);
    return v === undefined ? undefined : Math.floor(v / 2);
  }
  markReferenced(object: string): void {
    const v = this.m.get(object);
    if (v !== undefined && v % 2 === 0) this.m.set(object, v + 1);
  }
  *unreferenced(): Generator<[string, number]> {
    for (const [o, v] of this.m) if (v % 2 === 0) yield [o, v / 2];
  }
}

export function chunks<T>(items: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

export const OBJECT_NAME = /^(packs|blobs)\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class ScaleoutCheckState {
  readonly counts: ScaleoutFsckCounts = {
    objects: 0,
    objectBytes: 0,
    blobs: 0,
    blobBytes: 0,
    verifiedBlobs: 0,
    verifiedBytes: 0,
    directories: 0,
    pathInfos: 0,
    nars: 0,
    narBytes: 0,
    orphanedObjects: 0,
    orphanedObjectBytes: 0,
    retiredPacks: 0,
    retiredPackBytes: 0,
    deadBytes: 0,
    unfinishedUploads: 0,
    unfinishedUploadBytes: 0,
    orphanedBlobs: 0,
    orphanedDirectories: 0,
    errors: 0,
    warnings: 0,
  };
  readonly loc: S3Location;
  readonly store: string;
  readonly index: string;
  readonly s3: S3Objects;
  readonly pool: pg.Pool;
  readonly concurrency: number;
  readonly pageRows: number;
  readonly narLimit: Semaphore;
  readonly objects = new ObjectTable();
  /** Objects the index refers to that are confirmed missing. */
  readonly missingObjects = new Set<string>();
  /** Blobs whose bytes do not hash to them or whose index row is unusable, and why. Few: one per problem. */
  readonly badBlobs = new Map<string, string>();
  /** Directories with a problem of their own, and why; missing ones that something refers to as well. */
  readonly badDirs = new Map<string, string>();
  /** Recently looked-up directories as children: a bounded cache (insertion order = age). */
  readonly childCache = new Map<string, ChildState>();
  readonly blobRefs: DigestSpill;
  readonly dirRefs: DigestSpill;

  constructor(
    readonly addr: string,
    readonly opts: ScaleoutFsckOptions = {},
  ) {
    this.loc = parseS3Addr(addr);
    ({ store: this.store, index: this.index } = describeScaleout(addr));
    this.concurrency = Math.max(1, opts.concurrency ?? 8);
    this.pageRows = Math.max(1, opts.pageRows ?? 500);
    this.narLimit = new Semaphore(Math.max(1, opts.narConcurrency ?? 2));
    this.s3 = new S3Objects(this.loc);
    this.pool = new pg.Pool({
      connectionString: this.loc.indexUrl,
      max: this.concurrency + 2,
      connectionTimeoutMillis: 10_000,
      // fsck only reads; the server holds it to that.
      options: '-c default_transaction_read_only=on',
    });
    this.pool.on('error', () => {});
    this.blobRefs = new DigestSpill('blobs', opts.spillLimitBytes, opts.scratchDir);
    this.dirRefs = new DigestSpill('directories', opts.spillLimitBytes, opts.scratchDir);
  }

  report(severity: Finding['severity'], kind: FindingKind, object: string, msg: string): void {
    if (severity === 'error') this.counts.errors++;
    else this.counts.warnings++;
    this.opts.onFinding?.({ severity, kind, object, message: msg });
  }

  async q<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    try {
      return (await this.pool.query<R>(text, values)).rows;
    } catch (err) {
      throw new CastoreError('storage', `PostgreSQL at ${this.index}: ${message(err)}`, { cause: err });
    }
  }
}
