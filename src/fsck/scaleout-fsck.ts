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
import { CastoreError } from '../castore/errors.js';
import { type S3Location } from '../scaleout/addr.js';
import { SCHEMA_VERSION } from '../scaleout/schema.js';
import { message } from './report.js';
import { ScaleoutCheckState, type ScaleoutFsckCounts, type ScaleoutFsckOptions } from './scaleout-check-state.js';
import { ObjectChecks } from './scaleout-object-checks.js';
import { ScaleoutDirectoryChecks } from './scaleout-directory-checks.js';
import { ScaleoutPathInfoChecks } from './scaleout-pathinfo-checks.js';
import { ScaleoutOrphans } from './scaleout-orphans.js';

export type { ScaleoutFsckCounts, ScaleoutFsckOptions } from './scaleout-check-state.js';
export { redactUrl, describeScaleout } from './scaleout-check-state.js';

export class ScaleoutChecker {
  private readonly s: ScaleoutCheckState;
  private readonly objs: ObjectChecks;
  private readonly dirs: ScaleoutDirectoryChecks;
  private readonly pis: ScaleoutPathInfoChecks;
  private readonly orphans: ScaleoutOrphans;

  constructor(
    readonly addr: string,
    opts: ScaleoutFsckOptions = {},
  ) {
    this.s = new ScaleoutCheckState(addr, opts);
    this.objs = new ObjectChecks(this.s);
    this.dirs = new ScaleoutDirectoryChecks(this.s, this.objs);
    this.pis = new ScaleoutPathInfoChecks(this.s, this.dirs, this.objs);
    this.orphans = new ScaleoutOrphans(this.s);
  }

  get counts(): ScaleoutFsckCounts {
    return this.s.counts;
  }
  get loc(): S3Location {
    return this.s.loc;
  }
  get store(): string {
    return this.s.store;
  }
  get index(): string {
    return this.s.index;
  }

  async run(): Promise<ScaleoutFsckCounts> {
    try {
      await this.checkSchema();
      await this.objs.listObjects();
      await this.objs.checkPrefix();
      await this.objs.checkBlobIndex();
      await this.dirs.checkDirectories();
      await this.pis.checkPathInfos();
      await this.orphans.countOrphans('blobs', this.s.blobRefs, (n) => (this.s.counts.orphanedBlobs += n));
      await this.orphans.countOrphans('directories', this.s.dirRefs, (n) => (this.s.counts.orphanedDirectories += n));
      await this.orphans.reportOrphanedObjects();
      await this.orphans.reportUnfinishedUploads();
    } finally {
      await Promise.all([this.s.blobRefs.dispose(), this.s.dirRefs.dispose()]);
      this.s.s3.close();
      await this.s.pool.end().catch(() => {});
    }
    return this.s.counts;
  }

  private async checkSchema(): Promise<void> {
    let rows;
    try {
      rows = (await this.s.pool.query<{ version: number }>('SELECT version FROM nix_castore_schema')).rows;
    } catch (err) {
      if ((err as { code?: string }).code === '42P01') {
        throw new Error(`${this.s.index} holds no nix-castore store (no nix_castore_schema table; a daemon creates it when it first starts)`);
      }
      throw new CastoreError('storage', `PostgreSQL at ${this.s.index}: ${message(err)}`, { cause: err });
    }
    const v = rows[0]?.version;
    if (v !== SCHEMA_VERSION) {
      throw new Error(
        v === undefined
          ? `${this.s.index}: nix_castore_schema is empty; start a daemon on this store first`
          : v > SCHEMA_VERSION
            ? `${this.s.index} has schema version ${v}, newer than this nix-castore knows (${SCHEMA_VERSION}); upgrade nix-castore`
            : `${this.s.index} has schema version ${v}; start a daemon of this nix-castore version once to migrate it to ${SCHEMA_VERSION}`,
      );
    }
  }
}

export function scaleoutFsck(addr: string, opts: ScaleoutFsckOptions = {}): Promise<ScaleoutFsckCounts> {
  return new ScaleoutChecker(addr, opts).run();
}
