// What nothing refers to in a scale-out store: unreferenced rows (counted),
// S3 objects no index row names and unfinished multipart uploads (warned).
// Packs a collection's rewrite retired are not orphans: they are kept on
// purpose until retired for --grace (reads may still hold their old rows),
// then a collection deletes them; they are counted apart, not warned about.
import { ListMultipartUploadsCommand, ListPartsCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { storageError } from '../castore/errors.js';
import { DigestSpill } from '../util/digest-spill.js';
import { message } from './report.js';
import { ScaleoutCheckState, LOOKUP_BATCH, DIGEST_PAGE, chunks, OBJECT_NAME } from './scaleout-check-state.js';
import { OBJECTS_NAMED_SQL } from '../scaleout/pg-gc.js';

/** Which of the objects in $1 (text[]) some blob row names: the collector's question too. */
export const INDEXED_OBJECTS_SQL = OBJECTS_NAMED_SQL;

export class ScaleoutOrphans {
  constructor(
    private readonly s: ScaleoutCheckState,
  ) {}

  /** Counts the rows of `table` (keyset pages in digest order) that `refs` has not seen. */
  async countOrphans(table: 'blobs' | 'directories', refs: DigestSpill, add: (n: number) => void): Promise<void> {
    let after: Buffer = Buffer.alloc(0);
    let bucket = -1;
    let known = new Set<string>();
    for (;;) {
      const rows = await this.s.q<{ digest: Buffer }>(`SELECT digest FROM ${table} WHERE digest > $1 ORDER BY digest LIMIT $2`, [after, DIGEST_PAGE]);
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

  async reportOrphanedObjects(): Promise<void> {
    const candidates = [...this.s.objects.unreferenced()];
    for (const batch of chunks(candidates, LOOKUP_BATCH)) {
      // Indexed since the index scan passed it: not an orphan.
      const indexed = new Set(
        (
          await this.s.q<{ object: string }>(INDEXED_OBJECTS_SQL, [batch.map(([o]) => o)])
        ).map((r) => r.object),
      );
      const retired = await this.retired(batch.map(([o]) => o));
      for (const [object, size] of batch) {
        if (indexed.has(object)) continue;
        if (retired.has(object)) {
          this.s.counts.retiredPacks++;
          this.s.counts.retiredPackBytes += size;
          continue;
        }
        this.s.counts.orphanedObjects++;
        this.s.counts.orphanedObjectBytes += size;
        const odd = OBJECT_NAME.test(object) ? '' : '; nix-castore does not write objects by this name';
        this.s.report(
          'warning',
          'object',
          object,
          `orphaned bytes (${size} bytes): no index entry refers to this object${odd} ` +
            `(left by a daemon killed between writing and indexing it, or by a lost race; harmless)`,
        );
      }
    }
  }

  /** Of `objects`, the packs a rewrite retired (gc_retired; none before schema version 3). */
  private async retired(objects: string[]): Promise<Set<string>> {
    try {
      const rows = await this.s.q<{ object: string }>('SELECT r.object FROM gc_retired r JOIN unnest($1::text[]) AS k(o) ON r.object = k.o', [objects]);
      return new Set(rows.map((r) => r.object));
    } catch (err) {
      if ((err as { cause?: { code?: string } }).cause?.code === '42P01') return new Set(); // undefined_table
      throw err;
    }
  }

  /**
   * Multipart uploads nobody completed or aborted: a daemon killed while
   * streaming a large blob leaves one (or one is in progress right now).
   * S3 keeps their parts, invisible to listings, until they are aborted.
   */
  async reportUnfinishedUploads(): Promise<void> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await (await this.s.s3.client()).send(
          new ListMultipartUploadsCommand({ Bucket: this.s.loc.bucket, Prefix: this.s.loc.prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
      } catch (err) {
        throw storageError(`listing unfinished multipart uploads in ${this.s.store}: ${message(err)}`, err);
      }
      for (const u of page.Uploads ?? []) {
        const object = u.Key!.slice(this.s.loc.prefix.length);
        const sizes = await this.uploadParts(u.Key!, u.UploadId!);
        if (!sizes) continue; // completed or aborted meanwhile
        const { parts, bytes } = sizes;
        this.s.counts.unfinishedUploads++;
        this.s.counts.unfinishedUploadBytes += bytes;
        const started = u.Initiated ? ` started ${u.Initiated.toISOString()}` : '';
        this.s.report(
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

  async uploadParts(key: string, uploadId: string): Promise<{ parts: number; bytes: number } | undefined> {
    let parts = 0;
    let bytes = 0;
    let marker: string | undefined;
    do {
      let r;
      try {
        r = await (await this.s.s3.client()).send(new ListPartsCommand({ Bucket: this.s.loc.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }));
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
