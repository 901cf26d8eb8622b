// Consistency check of a scale-out store (s3://BUCKET/PREFIX?index=postgres://…;
// see ../scaleout/), read-only:
//
//   1. objects      one listing of the S3 objects under the prefix (key →
//                   size, in memory: fine up to millions of objects); every
//                   object the blob index refers to exists and is big enough
//                   for every (offset, length) in it. The index is read
//                   grouped by object, a page of objects at a time.
//      deep         (verifyBlobs) every indexed blob's bytes hash (BLAKE3)
//                   to its digest; each object is read once, sequentially
//   2. directories  every row decodes, validates, is canonically encoded and
//                   hashes to its key; its child directories exist with a
//                   size matching either DirectoryNode.size formula, and its
//                   files' blobs are indexed with the stated size, in sound
//                   objects
//   3. PathInfos    every row decodes, validates and is stored under its
//                   store path's digest; its root content is present with a
//                   complete closure (and, with `nar`, renders to the NAR its
//                   narinfo records)
//   4. orphans      S3 objects no index row refers to are warnings ("orphaned
//                   bytes": a daemon killed between writing an object and
//                   indexing it, or the loser of a race, leaves them; they
//                   are harmless); blobs and directories nothing refers to
//                   are only counted, as in the on-disk fsck; so are
//                   multipart uploads never completed nor aborted (a daemon
//                   killed while streaming a large blob leaves one)
//
// Tables are read in keyset-paged queries, never whole; references go to a
// DigestSpill. The database session is read-only and the schema is checked,
// not migrated. A daemon may keep writing meanwhile: an object that the
// index refers to but the listing missed is looked up again before it is
// called missing, and an orphan candidate is looked up in the index again
// before it is reported.
import { HeadObjectCommand, ListMultipartUploadsCommand, ListPartsCommand, S3ServiceException } from '@aws-sdk/client-s3';
import pg from 'pg';
import { Blake3Stream, EMPTY_BLOB_DIGEST, b3Hex } from '../castore/digest.js';
import { readDirectory, type Directory } from '../castore/messages.js';
import { showName } from '../castore/directory.js';
import { storageError, CastoreError } from '../castore/errors.js';
import type { BlobService } from '../castore/blob-service.js';
import type { DirectoryService } from '../castore/directory-service.js';
import { walkClosure } from '../castore/traverse.js';
import { parseS3Addr, type S3Location } from '../scaleout/addr.js';
import { S3Objects } from '../scaleout/s3-objects.js';
import { SCHEMA_VERSION } from '../scaleout/schema.js';
import type { Castore } from '../store/render-nar.js';
import type { PathInfo } from '../store/messages.js';
import { DigestSpill } from '../util/digest-spill.js';
import { examineDirectory, examinePathInfo, narMismatch, sizesOf, type ChildState } from './examine.js';
import { forEachLimit, Semaphore } from '../util/for-each-limit.js';
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

const SIZE_CACHE_ENTRIES = 100_000;
/** Objects per page of the grouped blob index scan. */
const OBJECT_PAGE = 1000;
/**
 * Keys per lookup. Lookups join unnest($1) with the table: `= ANY($1)` with
 * a thousand keys makes PostgreSQL scan the whole table (4x slower at 160k
 * rows, and worse the bigger the table).
 */
const LOOKUP_BATCH = 1000;
/** Digests per page of the orphan count. */
const DIGEST_PAGE = 10_000;
/** Offending rows quoted per problem. */
const EXAMPLES = 3;

/** A PostgreSQL URL with its password replaced by `***`. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@').replace(/([?&]password=)[^&]*/i, '$1***');
}

/** How a scale-out store is named in fsck's output: its bucket/prefix (and endpoint), and its database. */
export function describeScaleout(addr: string): { store: string; index: string } {
  const loc = parseS3Addr(addr);
  return { store: `s3://${loc.bucket}/${loc.prefix}${loc.endpoint ? ` at ${loc.endpoint}` : ''}`, index: redactUrl(loc.indexUrl) };
}

interface BlobRow {
  object: string;
  offset: number;
  length: number;
}

interface ObjectGroup {
  object: string;
  rows: number;
  bytes: number;
  end: number;
  badRows: number;
}

/**
 * The listed objects: key → size, and whether an index row refers to it,
 * packed into one number (size·2 + referenced) to keep memory to one map.
 */
class ObjectTable {
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

function chunks<T>(items: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

const OBJECT_NAME = /^(packs|blobs)\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class ScaleoutChecker {
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
  private readonly s3: S3Objects;
  private readonly pool: pg.Pool;
  private readonly concurrency: number;
  private readonly pageRows: number;
  private readonly narLimit: Semaphore;
  private readonly objects = new ObjectTable();
  /** Objects the index refers to that are confirmed missing. */
  private readonly missingObjects = new Set<string>();
  /** Blobs whose bytes do not hash to them or whose index row is unusable, and why. Few: one per problem. */
  private readonly badBlobs = new Map<string, string>();
  /** Directories with a problem of their own, and why; missing ones that something refers to as well. */
  private readonly badDirs = new Map<string, string>();
  /** Recently looked-up directories as children: a bounded cache (insertion order = age). */
  private readonly childCache = new Map<string, ChildState>();
  private readonly blobRefs: DigestSpill;
  private readonly dirRefs: DigestSpill;

  constructor(
    readonly addr: string,
    private readonly opts: ScaleoutFsckOptions = {},
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

  async run(): Promise<ScaleoutFsckCounts> {
    try {
      await this.checkSchema();
      await this.listObjects();
      await this.checkPrefix();
      await this.checkBlobIndex();
      await this.checkDirectories();
      await this.checkPathInfos();
      await this.countOrphans('blobs', this.blobRefs, (n) => (this.counts.orphanedBlobs += n));
      await this.countOrphans('directories', this.dirRefs, (n) => (this.counts.orphanedDirectories += n));
      await this.reportOrphanedObjects();
      await this.reportUnfinishedUploads();
    } finally {
      await Promise.all([this.blobRefs.dispose(), this.dirRefs.dispose()]);
      this.s3.close();
      await this.pool.end().catch(() => {});
    }
    return this.counts;
  }

  private report(severity: Finding['severity'], kind: FindingKind, object: string, msg: string): void {
    if (severity === 'error') this.counts.errors++;
    else this.counts.warnings++;
    this.opts.onFinding?.({ severity, kind, object, message: msg });
  }

  private async q<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    try {
      return (await this.pool.query<R>(text, values)).rows;
    } catch (err) {
      throw new CastoreError('storage', `PostgreSQL at ${this.index}: ${message(err)}`, { cause: err });
    }
  }

  private async checkSchema(): Promise<void> {
    let rows;
    try {
      rows = (await this.pool.query<{ version: number }>('SELECT version FROM nix_castore_schema')).rows;
    } catch (err) {
      if ((err as { code?: string }).code === '42P01') {
        throw new Error(`${this.index} holds no nix-castore store (no nix_castore_schema table; a daemon creates it when it first starts)`);
      }
      throw new CastoreError('storage', `PostgreSQL at ${this.index}: ${message(err)}`, { cause: err });
    }
    const v = rows[0]?.version;
    if (v !== SCHEMA_VERSION) {
      throw new Error(
        v === undefined
          ? `${this.index}: nix_castore_schema is empty; start a daemon on this store first`
          : v > SCHEMA_VERSION
            ? `${this.index} has schema version ${v}, newer than this nix-castore knows (${SCHEMA_VERSION}); upgrade nix-castore`
            : `${this.index} has schema version ${v}; start a daemon of this nix-castore version once to migrate it to ${SCHEMA_VERSION}`,
      );
    }
  }

  // ---- S3 objects and the blob index ----

  private async listObjects(): Promise<void> {
    for await (const o of this.s3.list()) {
      this.objects.set(o.object, o.size);
      this.counts.objects++;
      this.counts.objectBytes += o.size;
    }
  }

  /** Nothing under the prefix but an index full of blobs is a wrong address, not a million missing objects. */
  private async checkPrefix(): Promise<void> {
    if (this.counts.objects > 0) return;
    const [{ n }] = await this.q<{ n: string }>('SELECT count(*) AS n FROM (SELECT 1 FROM blobs LIMIT 1000) AS t');
    if (n === '0') return;
    throw new Error(
      `there are no objects under ${this.store}, but the blob index at ${this.index} lists ${n === '1000' ? 'at least 1000' : n} blobs: ` +
        `is the bucket or prefix wrong?`,
    );
  }

  /** An object's size, asking S3 again for one the listing did not have (written since?); undefined when missing. */
  private async objectSize(object: string): Promise<number | undefined> {
    const known = this.objects.size(object);
    if (known !== undefined) return known;
    if (this.missingObjects.has(object)) return undefined;
    try {
      const r = await (await this.s3.client()).send(new HeadObjectCommand({ Bucket: this.loc.bucket, Key: this.s3.key(object) }));
      const size = r.ContentLength ?? 0;
      this.objects.set(object, size, true);
      this.counts.objects++;
      this.counts.objectBytes += size;
      return size;
    } catch (err) {
      if (err instanceof S3ServiceException && (err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404)) {
        this.missingObjects.add(object);
        return undefined;
      }
      throw storageError(`looking up ${object} in ${this.store}: ${message(err)}`, err);
    }
  }

  /** The index, one group of rows per object, a page of objects at a time. */
  private async *objectGroups(): AsyncGenerator<ObjectGroup> {
    let after = '';
    for (;;) {
      const rows = await this.q<{ object: string; n: string; bytes: string | null; end_: string | null; bad: string }>(
        `SELECT object, count(*) AS n, sum(length) AS bytes, max("offset" + length) AS end_,
                count(*) FILTER (WHERE "offset" < 0 OR length < 0 OR length(digest) <> 32) AS bad
           FROM blobs WHERE object > $1 GROUP BY object ORDER BY object LIMIT $2`,
        [after, OBJECT_PAGE],
      );
      for (const r of rows) {
        yield { object: r.object, rows: Number(r.n), bytes: Number(r.bytes ?? 0), end: Number(r.end_ ?? 0), badRows: Number(r.bad) };
      }
      if (rows.length < OBJECT_PAGE) return;
      after = rows[rows.length - 1].object;
    }
  }

  private async checkBlobIndex(): Promise<void> {
    await forEachLimit(this.objectGroups(), this.opts.verifyBlobs ? this.concurrency : 1, (g) => this.checkObject(g));
  }

  private async examples(object: string, where: string, values: unknown[]): Promise<{ hex: string; offset: number; length: number }[]> {
    const rows = await this.q<{ digest: Buffer; offset: string; length: string }>(
      `SELECT digest, "offset", length FROM blobs WHERE object = $1 AND (${where}) ORDER BY "offset" LIMIT ${EXAMPLES}`,
      [object, ...values],
    );
    return rows.map((r) => ({ hex: r.digest.toString('hex'), offset: Number(r.offset), length: Number(r.length) }));
  }

  private async checkObject(g: ObjectGroup): Promise<void> {
    this.counts.blobs += g.rows;
    this.counts.blobBytes += g.bytes;
    this.objects.markReferenced(g.object);
    const size = await this.objectSize(g.object);
    const blobs = g.rows === 1 ? '1 indexed blob points' : `${g.rows} indexed blobs point`;
    if (size === undefined) {
      const ex = await this.examples(g.object, 'true', []);
      this.report(
        'error',
        'object',
        g.object,
        `missing from ${this.store}, but ${blobs} into it (${g.bytes} bytes; ${ex.map((e) => e.hex).join(', ')}${g.rows > ex.length ? ', …' : ''})`,
      );
      return;
    }
    if (g.badRows > 0) {
      const ex = await this.examples(g.object, `"offset" < 0 OR length < 0 OR length(digest) <> 32`, []);
      for (const e of ex) this.badBlobs.set(e.hex, `its index row is invalid`);
      this.report(
        'error',
        'object',
        g.object,
        `${g.badRows} invalid index ${g.badRows === 1 ? 'row' : 'rows'} (negative offset or length, or a digest not 32 bytes long): ` +
          ex.map((e) => `${e.hex || '(empty)'} at offset ${e.offset}, ${e.length} bytes`).join('; '),
      );
    }
    if (g.end > size) {
      const ex = await this.examples(g.object, `"offset" + length > $2`, [size]);
      const n = (await this.q<{ n: string }>(`SELECT count(*) AS n FROM blobs WHERE object = $1 AND "offset" + length > $2`, [g.object, size]))[0].n;
      this.report(
        'error',
        'object',
        g.object,
        `has ${size} bytes, but ${n === '1' ? '1 indexed blob lies' : `${n} indexed blobs lie`} beyond its end: ` +
          ex.map((e) => `${e.hex} at offset ${e.offset}, ${e.length} bytes`).join('; ') +
          (Number(n) > ex.length ? '; …' : ''),
      );
    }
    if (size > g.bytes) this.counts.deadBytes += size - g.bytes;
    if (this.opts.verifyBlobs) await this.verifyObject(g.object, size);
  }

  /** Reads the object once, front to back, hashing every indexed blob in it as its bytes go by. */
  private async verifyObject(object: string, size: number): Promise<void> {
    const all = await this.q<{ digest: Buffer; offset: string; length: string }>(
      'SELECT digest, "offset", length FROM blobs WHERE object = $1 ORDER BY "offset", length',
      [object],
    );
    // Rows that cannot be verified were reported above.
    const rows = all
      .map((r) => ({ digest: r.digest, offset: Number(r.offset), length: Number(r.length) }))
      .filter((r) => r.digest.length === 32 && r.offset >= 0 && r.length >= 0 && r.offset + r.length <= size);
    const mismatch = (r: { digest: Buffer; offset: number; length: number }, got: Buffer): void => {
      this.counts.verifiedBlobs++;
      if (got.equals(r.digest)) return;
      const hex = r.digest.toString('hex');
      this.badBlobs.set(hex, `its bytes in ${object} do not hash to it`);
      this.report('error', 'object', object, `blob ${hex} (offset ${r.offset}, ${r.length} bytes) hashes to ${b3Hex(got)}`);
    };
    const ranged = [];
    for (const r of rows) {
      if (r.length === 0) mismatch(r, EMPTY_BLOB_DIGEST);
      else ranged.push(r);
    }
    if (ranged.length === 0) return;
    const end = Math.max(...ranged.map((r) => r.offset + r.length));
    let next = 0;
    let active: { r: (typeof ranged)[number]; hash: Blake3Stream }[] = [];
    let pos = 0;
    try {
      for await (const chunk of await this.s3.range(object, 0, end)) {
        const ce = pos + chunk.length;
        while (next < ranged.length && ranged[next].offset < ce) active.push({ r: ranged[next++], hash: new Blake3Stream() });
        const still: typeof active = [];
        for (const a of active) {
          const from = Math.max(a.r.offset, pos);
          const to = Math.min(a.r.offset + a.r.length, ce);
          if (to > from) a.hash.update(chunk.subarray(from - pos, to - pos));
          if (a.r.offset + a.r.length <= ce) mismatch(a.r, a.hash.digest());
          else still.push(a);
        }
        active = still;
        pos = ce;
        if (pos >= end) break;
      }
    } catch (err) {
      this.report('error', 'object', object, `cannot be read: ${message(err)}`);
      for (const r of ranged.slice(next)) this.badBlobs.set(r.digest.toString('hex'), `${object} cannot be read`);
      for (const a of active) this.badBlobs.set(a.r.digest.toString('hex'), `${object} cannot be read`);
      return;
    } finally {
      this.counts.verifiedBytes += pos;
    }
    if (pos < end) {
      this.report('error', 'object', object, `S3 returned ${pos} of its first ${end} bytes (the listing said ${size})`);
      for (const a of active) this.badBlobs.set(a.r.digest.toString('hex'), `${object} is short`);
      for (const r of ranged.slice(next)) this.badBlobs.set(r.digest.toString('hex'), `${object} is short`);
    }
  }

  /** Index rows of these blobs (32-byte digests), by hex digest. */
  private async blobRows(digests: Iterable<Uint8Array>): Promise<Map<string, BlobRow>> {
    const keys = new Map<string, Buffer>();
    for (const d of digests) if (d.length === 32) keys.set(b3Hex(d), Buffer.from(d));
    const out = new Map<string, BlobRow>();
    for (const batch of chunks([...keys.values()], LOOKUP_BATCH)) {
      const rows = await this.q<{ digest: Buffer; object: string; offset: string; length: string }>(
        'SELECT b.digest, b.object, b."offset", b.length FROM unnest($1::bytea[]) AS k(d) JOIN blobs b ON b.digest = k.d',
        [batch],
      );
      for (const r of rows) out.set(r.digest.toString('hex'), { object: r.object, offset: Number(r.offset), length: Number(r.length) });
    }
    return out;
  }

  /** Why the blob a FileNode names cannot serve it, if it cannot. */
  private async blobProblem(digest: Uint8Array, size: number, rows: Map<string, BlobRow>): Promise<string | undefined> {
    if (digest.length !== 32) return `invalid digest length ${digest.length}`;
    const hex = b3Hex(digest);
    const row = rows.get(hex);
    if (!row) return `blob ${hex} is not indexed`;
    if (row.length !== size) return `the entry says ${size} bytes but blob ${hex} is indexed with ${row.length}`;
    const objSize = await this.objectSize(row.object);
    if (objSize === undefined) return `blob ${hex} is in ${row.object}, which is missing`;
    if (row.offset + row.length > objSize) return `blob ${hex} lies beyond the end of ${row.object} (${objSize} bytes)`;
    const bad = this.badBlobs.get(hex);
    if (bad) return `blob ${hex} is corrupt: ${bad}`;
    return undefined;
  }

  // ---- directories ----

  private remember(hex: string, state: ChildState): ChildState {
    if (this.childCache.size >= SIZE_CACHE_ENTRIES) this.childCache.delete(this.childCache.keys().next().value!);
    this.childCache.set(hex, state);
    return state;
  }

  /** Directory rows by hex digest (absent: missing). */
  private async directoryRows(hexes: Iterable<string>): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for (const batch of chunks([...new Set(hexes)], LOOKUP_BATCH)) {
      const rows = await this.q<{ digest: Buffer; data: Buffer }>('SELECT t.digest, t.data FROM unnest($1::bytea[]) AS k(d) JOIN directories t ON t.digest = k.d', [
        batch.map((h) => Buffer.from(h, 'hex')),
      ]);
      for (const r of rows) out.set(r.digest.toString('hex'), r.data);
    }
    return out;
  }

  /** The child states of these directories, from the cache or one query per batch. */
  private async childStates(hexes: Iterable<string>): Promise<Map<string, ChildState>> {
    const out = new Map<string, ChildState>();
    const todo: string[] = [];
    for (const h of hexes) {
      const known = this.childCache.get(h);
      if (known) out.set(h, known);
      else todo.push(h);
    }
    if (todo.length === 0) return out;
    const rows = await this.directoryRows(todo);
    for (const h of todo) {
      const data = rows.get(h);
      let state: ChildState;
      if (!data) state = 'missing';
      else {
        const d = examineDirectory(h, data, 'key');
        state = d.problem || !d.dir ? 'corrupt' : sizesOf(d.dir);
      }
      out.set(h, this.remember(h, state));
    }
    return out;
  }

  /** Keyset pages of (digest, data) rows; the next page is fetched while the caller checks this one. */
  private async *rowPages(table: 'directories' | 'pathinfos'): AsyncGenerator<{ digest: Buffer; data: Buffer }[]> {
    type Row = { digest: Buffer; data: Buffer };
    const fetch = (after: Buffer): Promise<Row[]> =>
      this.q<Row>(`SELECT digest, data FROM ${table} WHERE digest > $1 ORDER BY digest LIMIT $2`, [after, this.pageRows]);
    let next: Promise<Row[]> | undefined = fetch(Buffer.alloc(0));
    try {
      while (next) {
        const page: Row[] = await next;
        next = page.length < this.pageRows ? undefined : fetch(page[page.length - 1].digest);
        yield page;
      }
    } finally {
      next?.catch(() => {});
    }
  }

  private async checkDirectories(): Promise<void> {
    for await (const page of this.rowPages('directories')) await this.checkDirectoryPage(page);
  }

  private async checkDirectoryPage(page: { digest: Buffer; data: Buffer }[]): Promise<void> {
    const sound: { hex: string; rel: string; dir: Directory }[] = [];
    for (const row of page) {
      const hex = row.digest.toString('hex');
      const rel = `directories/${hex}`;
      this.counts.directories++;
      const d = examineDirectory(hex, row.data, 'key');
      if (d.problem || !d.dir) {
        this.badDirs.set(hex, d.problem ?? 'unreadable');
        this.remember(hex, 'corrupt');
        this.report('error', 'directory', rel, d.problem ?? 'unreadable');
        continue;
      }
      this.remember(hex, sizesOf(d.dir));
      for (const c of d.dir.directories) await this.dirRefs.add(c.digest);
      for (const f of d.dir.files) await this.blobRefs.add(f.digest);
      sound.push({ hex, rel, dir: d.dir });
    }
    const [children, blobs] = await Promise.all([
      this.childStates(sound.flatMap((s) => s.dir.directories.map((c) => b3Hex(c.digest)))),
      this.blobRows(sound.flatMap((s) => s.dir.files.map((f) => f.digest))),
    ]);
    for (const { hex, rel, dir } of sound) {
      const problems: string[] = [];
      for (const c of dir.directories) {
        const childHex = b3Hex(c.digest);
        const state = children.get(childHex)!;
        if (state === 'missing') {
          this.badDirs.set(childHex, 'missing');
          problems.push(`directory ${showName(c.name)} refers to ${childHex}, which is missing`);
        } else if (state !== 'corrupt' && !state.includes(c.size)) {
          problems.push(`directory ${showName(c.name)} says size ${c.size}, but ${childHex} has size ${state[0]} (or ${state[1]} by the older formula)`);
        }
        // A corrupt child is reported as itself.
      }
      for (const f of dir.files) {
        const p = await this.blobProblem(f.digest, f.size, blobs);
        if (p) problems.push(`file ${showName(f.name)}: ${p}`);
      }
      if (problems.length > 0) {
        this.badDirs.set(hex, problems[0]);
        for (const p of problems) this.report('error', 'directory', rel, p);
      }
    }
  }

  // ---- PathInfos ----

  private async checkPathInfos(): Promise<void> {
    for await (const page of this.rowPages('pathinfos')) await this.checkPathInfoPage(page);
  }

  private async checkPathInfoPage(page: { digest: Buffer; data: Buffer }[]): Promise<void> {
    const sound: { rel: string; info: PathInfo; path: string }[] = [];
    for (const row of page) {
      const hex = row.digest.toString('hex');
      const rel = `pathinfos/${hex}`;
      this.counts.pathInfos++;
      const e = examinePathInfo(row.data);
      if ('problem' in e) {
        this.report('error', 'pathinfo', rel, e.problem);
        continue;
      }
      if (e.key !== hex) {
        this.report('error', 'pathinfo', rel, `holds the PathInfo of ${e.path}, which belongs under pathinfos/${e.key}`);
        continue;
      }
      const node = e.info.node!;
      if (node.type === 'file') await this.blobRefs.add(node.digest);
      else if (node.type === 'directory') await this.dirRefs.add(node.digest);
      sound.push({ rel, info: e.info, path: e.path });
    }
    const roots = sound.map((s) => s.info.node!);
    const [blobs, states] = await Promise.all([
      this.blobRows(roots.flatMap((n) => (n.type === 'file' ? [n.digest] : []))),
      this.childStates(roots.flatMap((n) => (n.type === 'directory' ? [b3Hex(n.digest)] : []))),
    ]);
    const narChecks: Promise<void>[] = [];
    for (const { rel, info, path } of sound) {
      const node = info.node!;
      let problem: string | undefined;
      if (node.type === 'file') {
        const p = await this.blobProblem(node.digest, node.size, blobs);
        if (p) problem = `root file: ${p}`;
      } else if (node.type === 'directory') {
        problem = await this.closureProblem(node.digest, node.size, states.get(b3Hex(node.digest))!);
      }
      if (problem) {
        this.report('error', 'pathinfo', rel, `${path}: ${problem}`);
        continue;
      }
      if (this.opts.nar) narChecks.push(this.narLimit.run(() => this.checkNar(info, path, rel)));
    }
    await Promise.all(narChecks);
  }

  /** Why the directory closure under a root is not complete and sound, if it is not. */
  private async closureProblem(digest: Uint8Array, size: number, state: ChildState): Promise<string | undefined> {
    const rootHex = b3Hex(digest);
    if (state === 'missing') return `root directory ${rootHex} is missing`;
    if (state === 'corrupt') return `root directory ${rootHex} is corrupt`;
    if (!state.includes(size)) return `root node says size ${size}, but ${rootHex} has size ${state[0]} (or ${state[1]} by the older formula)`;
    // Every directory row was checked with its children and blobs, so a
    // closure can only be broken where a bad directory lies; walk it (a
    // level per query) only when there are any.
    if (this.badDirs.size === 0) return undefined;
    const seen = new Set<string>([rootHex]);
    let level: { hex: string; at: string }[] = [{ hex: rootHex, at: '' }];
    let first: string | undefined;
    let bad = 0;
    while (level.length > 0) {
      const rows = await this.directoryRows(level.filter((x) => !this.badDirs.has(x.hex)).map((x) => x.hex));
      const next: typeof level = [];
      for (const { hex, at } of level) {
        const why = this.badDirs.get(hex);
        const where = at ? `at ${JSON.stringify(at)}` : 'at the root';
        if (why) {
          bad++;
          first ??= `directory ${hex} ${where}: ${why}`;
          continue;
        }
        const data = rows.get(hex);
        const d = data ? examineDirectory(hex, data, 'key') : undefined;
        if (!d || d.problem || !d.dir) {
          bad++;
          first ??= `directory ${hex} ${where}: ${d ? d.problem : 'missing'}`;
          continue;
        }
        for (const c of d.dir.directories) {
          const h = b3Hex(c.digest);
          if (seen.has(h)) continue;
          seen.add(h);
          const name = Buffer.from(c.name).toString('latin1');
          next.push({ hex: h, at: at ? `${at}/${name}` : name });
        }
      }
      level = next;
    }
    if (!first) return undefined;
    return `directory closure incomplete: ${first}${bad > 1 ? ` (and ${bad - 1} more bad directories)` : ''}`;
  }

  /** Read-only services over the same S3 client and database, for rendering NARs. */
  private castore(): Castore {
    const loadDir = async (digest: Uint8Array): Promise<Directory | undefined> => {
      const rows = await this.q<{ data: Buffer }>('SELECT data FROM directories WHERE digest = $1', [Buffer.from(digest)]);
      return rows.length ? readDirectory(rows[0].data) : undefined;
    };
    const readOnly = (): never => {
      throw new CastoreError('read-only', 'fsck only reads');
    };
    const blobs: BlobService = {
      stat: async (digest) => ((await this.blobRows([digest])).size ? { chunks: [] } : undefined),
      read: async (digest) => {
        const row = (await this.blobRows([digest])).get(b3Hex(digest));
        if (!row) return undefined;
        if (row.length === 0) return (async function* () {})();
        const body = await this.s3.range(row.object, row.offset, row.length);
        return (async function* () {
          let got = 0;
          for await (const chunk of body) {
            got += chunk.length;
            yield chunk;
          }
          if (got !== row.length) throw storageError(`blob ${b3Hex(digest)}: S3 returned ${got} of ${row.length} bytes from ${row.object}`);
        })();
      },
      put: readOnly,
      close: async () => {},
    };
    const directories: DirectoryService = {
      get: loadDir,
      getRecursive: (root) => walkClosure(root, loadDir),
      putter: readOnly,
      close: async () => {},
    };
    return { blobs, directories };
  }

  private narCastore: Castore | undefined;

  private async checkNar(info: PathInfo, path: string, rel: string): Promise<void> {
    const problem = await narMismatch(info, (this.narCastore ??= this.castore()), path, this.counts);
    if (problem) this.report('error', 'pathinfo', rel, problem);
  }

  // ---- orphans ----

  /** Counts the rows of `table` (keyset pages in digest order) that `refs` has not seen. */
  private async countOrphans(table: 'blobs' | 'directories', refs: DigestSpill, add: (n: number) => void): Promise<void> {
    let after: Buffer = Buffer.alloc(0);
    let bucket = -1;
    let known = new Set<string>();
    for (;;) {
      const rows = await this.q<{ digest: Buffer }>(`SELECT digest FROM ${table} WHERE digest > $1 ORDER BY digest LIMIT $2`, [after, DIGEST_PAGE]);
      for (const { digest } of rows) {
        if (digest.length !== 32) continue; // reported as invalid already
        if (digest[0] !== bucket) {
          bucket = digest[0];
          known = await refs.bucket(bucket);
        }
        if (!known.has(digest.toString('hex'))) add(1);
      }
      if (rows.length < DIGEST_PAGE) return;
      after = rows[rows.length - 1].digest;
    }
  }

  private async reportOrphanedObjects(): Promise<void> {
    const candidates = [...this.objects.unreferenced()];
    for (const batch of chunks(candidates, LOOKUP_BATCH)) {
      // Indexed since the index scan passed it: not an orphan.
      const indexed = new Set(
        (
          await this.q<{ object: string }>('SELECT k.o AS object FROM unnest($1::text[]) AS k(o) WHERE EXISTS (SELECT 1 FROM blobs b WHERE b.object = k.o)', [
            batch.map(([o]) => o),
          ])
        ).map((r) => r.object),
      );
      for (const [object, size] of batch) {
        if (indexed.has(object)) continue;
        this.counts.orphanedObjects++;
        this.counts.orphanedObjectBytes += size;
        const odd = OBJECT_NAME.test(object) ? '' : '; nix-castore does not write objects by this name';
        this.report(
          'warning',
          'object',
          object,
          `orphaned bytes (${size} bytes): no index entry refers to this object${odd} ` +
            `(left by a daemon killed between writing and indexing it, or by a lost race; harmless)`,
        );
      }
    }
  }

  /**
   * Multipart uploads nobody completed or aborted: a daemon killed while
   * streaming a large blob leaves one (or one is in progress right now).
   * S3 keeps their parts, invisible to listings, until they are aborted.
   */
  private async reportUnfinishedUploads(): Promise<void> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await (await this.s3.client()).send(
          new ListMultipartUploadsCommand({ Bucket: this.loc.bucket, Prefix: this.loc.prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
      } catch (err) {
        throw storageError(`listing unfinished multipart uploads in ${this.store}: ${message(err)}`, err);
      }
      for (const u of page.Uploads ?? []) {
        const object = u.Key!.slice(this.loc.prefix.length);
        const sizes = await this.uploadParts(u.Key!, u.UploadId!);
        if (!sizes) continue; // completed or aborted meanwhile
        const { parts, bytes } = sizes;
        this.counts.unfinishedUploads++;
        this.counts.unfinishedUploadBytes += bytes;
        const started = u.Initiated ? ` started ${u.Initiated.toISOString()}` : '';
        this.report(
          'warning',
          'object',
          object,
          `unfinished multipart upload${started} (${parts} ${parts === 1 ? 'part' : 'parts'}, ${bytes} bytes; upload id ${u.UploadId}): ` +
            `left by a daemon killed while writing a large blob, unless one is still writing it; harmless, but its parts take space ` +
            `until it is aborted (a bucket lifecycle rule with AbortIncompleteMultipartUpload does that)`,
        );
      }
      if (!page.IsTruncated) return;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  private async uploadParts(key: string, uploadId: string): Promise<{ parts: number; bytes: number } | undefined> {
    let parts = 0;
    let bytes = 0;
    let marker: string | undefined;
    do {
      let r;
      try {
        r = await (await this.s3.client()).send(new ListPartsCommand({ Bucket: this.loc.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }));
      } catch (err) {
        if (err instanceof S3ServiceException && (err.name === 'NoSuchUpload' || err.$metadata?.httpStatusCode === 404)) return undefined;
        throw storageError(`listing the parts of upload ${uploadId} of ${key}: ${message(err)}`, err);
      }
      for (const p of r.Parts ?? []) {
        parts++;
        bytes += p.Size ?? 0;
      }
      marker = r.IsTruncated ? r.NextPartNumberMarker : undefined;
    } while (marker);
    return { parts, bytes };
  }
}

/** Checks the scale-out store at `addr` (s3://…?index=postgres://…); see the top of this file. */
export function scaleoutFsck(addr: string, opts: ScaleoutFsckOptions = {}): Promise<ScaleoutFsckCounts> {
  return new ScaleoutChecker(addr, opts).run();
}
