// S3 objects and the blob index of a scale-out store: every object the index
// names exists and is long enough, (deep) every blob hashes to its digest.
import { HeadObjectCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { Blake3Stream, EMPTY_BLOB_DIGEST, b3Hex } from '../castore/digest.js';
import { storageError } from '../castore/errors.js';
import { forEachLimit } from '../util/for-each-limit.js';
import { message } from './report.js';
import { LOCATION_COLUMNS, inflateWhole, locationOf, storedLength, type Location, type LocationRow } from '../scaleout/blob-codec.js';
import { readCompressedWhole } from '../scaleout/compressed-reads.js';
import { ScaleoutCheckState, OBJECT_PAGE, LOOKUP_BATCH, EXAMPLES, type BlobRow, type ObjectGroup, chunks } from './scaleout-check-state.js';
import { digestArrayLookup } from '../scaleout/pg-digests.js';

/** Index rows of the blobs of the digests in $1 (bytea[]). */
export const BLOB_ROWS_SQL = `SELECT k.d AS digest, ${LOCATION_COLUMNS} FROM ${digestArrayLookup(1, 'blobs', 'b', LOCATION_COLUMNS)}`;

export class ObjectChecks {
  constructor(
    private readonly s: ScaleoutCheckState,
  ) {}

  async listObjects(): Promise<void> {
    for await (const o of this.s.s3.list()) {
      this.s.objects.set(o.object, o.size);
      this.s.counts.objects++;
      this.s.counts.objectBytes += o.size;
    }
  }

  /** Nothing under the prefix but an index full of blobs is a wrong address, not a million missing objects. */
  async checkPrefix(): Promise<void> {
    if (this.s.counts.objects > 0) return;
    const [{ n }] = await this.s.q<{ n: string }>('SELECT count(*) AS n FROM (SELECT 1 FROM blobs LIMIT 1000) AS t');
    if (n === '0') return;
    throw new Error(
      `there are no objects under ${this.s.store}, but the blob index at ${this.s.index} lists ${n === '1000' ? 'at least 1000' : n} blobs: ` +
        `is the bucket or prefix wrong?`,
    );
  }

  /** An object's size, asking S3 again for one the listing did not have (written since?); undefined when missing. */
  async objectSize(object: string): Promise<number | undefined> {
    const known = this.s.objects.size(object);
    if (known !== undefined) return known;
    if (this.s.missingObjects.has(object)) return undefined;
    try {
      const r = await (await this.s.s3.client()).send(new HeadObjectCommand({ Bucket: this.s.loc.bucket, Key: this.s.s3.key(object) }));
      const size = r.ContentLength ?? 0;
      this.s.objects.set(object, size, true);
      this.s.counts.objects++;
      this.s.counts.objectBytes += size;
      return size;
    } catch (err) {
      if (err instanceof S3ServiceException && (err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404)) {
        this.s.missingObjects.add(object);
        return undefined;
      }
      throw storageError(`looking up ${object} in ${this.s.store}: ${message(err)}`, err);
    }
  }

  /** The index, one group of rows per object, a page of objects at a time. */
  async *objectGroups(): AsyncGenerator<ObjectGroup> {
    let after = '';
    for (;;) {
      const rows = await this.s.q<{ object: string; n: string; bytes: string | null; stored: string | null; end_: string | null; bad: string }>(
        `SELECT object, count(*) AS n, sum(length) AS bytes, sum(coalesce(stored, length)) AS stored, max("offset" + coalesce(stored, length)) AS end_,
                count(*) FILTER (WHERE "offset" < 0 OR length < 0 OR stored < 0 OR length(digest) <> 32) AS bad
           FROM blobs WHERE object > $1 GROUP BY object ORDER BY object LIMIT $2`,
        [after, OBJECT_PAGE],
      );
      for (const r of rows) {
        yield { object: r.object, rows: Number(r.n), bytes: Number(r.bytes ?? 0), stored: Number(r.stored ?? 0), end: Number(r.end_ ?? 0), badRows: Number(r.bad) };
      }
      if (rows.length < OBJECT_PAGE) return;
      after = rows[rows.length - 1].object;
    }
  }

  async checkBlobIndex(): Promise<void> {
    await forEachLimit(this.objectGroups(), this.s.opts.verifyBlobs ? this.s.concurrency : 1, (g) => this.checkObject(g));
  }

  async examples(object: string, where: string, values: unknown[]): Promise<{ hex: string; offset: number; length: number }[]> {
    const rows = await this.s.q<{ digest: Buffer; offset: string; length: string }>(
      `SELECT digest, "offset", length FROM blobs WHERE object = $1 AND (${where}) ORDER BY "offset" LIMIT ${EXAMPLES}`,
      [object, ...values],
    );
    return rows.map((r) => ({ hex: r.digest.toString('hex'), offset: Number(r.offset), length: Number(r.length) }));
  }

  async checkObject(g: ObjectGroup): Promise<void> {
    this.s.counts.blobs += g.rows;
    this.s.counts.blobBytes += g.bytes;
    this.s.objects.markReferenced(g.object);
    const size = await this.objectSize(g.object);
    const blobs = g.rows === 1 ? '1 indexed blob points' : `${g.rows} indexed blobs point`;
    if (size === undefined) {
      const ex = await this.examples(g.object, 'true', []);
      this.s.report(
        'error',
        'object',
        g.object,
        `missing from ${this.s.store}, but ${blobs} into it (${g.bytes} bytes; ${ex.map((e) => e.hex).join(', ')}${g.rows > ex.length ? ', …' : ''})`,
      );
      return;
    }
    if (g.badRows > 0) {
      const ex = await this.examples(g.object, `"offset" < 0 OR length < 0 OR length(digest) <> 32`, []);
      for (const e of ex) this.s.badBlobs.set(e.hex, `its index row is invalid`);
      this.s.report(
        'error',
        'object',
        g.object,
        `${g.badRows} invalid index ${g.badRows === 1 ? 'row' : 'rows'} (negative offset or length, or a digest not 32 bytes long): ` +
          ex.map((e) => `${e.hex || '(empty)'} at offset ${e.offset}, ${e.length} bytes`).join('; '),
      );
    }
    if (g.end > size) {
      const ex = await this.examples(g.object, `"offset" + coalesce(stored, length) > $2`, [size]);
      const n = (await this.s.q<{ n: string }>(`SELECT count(*) AS n FROM blobs WHERE object = $1 AND "offset" + coalesce(stored, length) > $2`, [g.object, size]))[0].n;
      this.s.report(
        'error',
        'object',
        g.object,
        `has ${size} bytes, but ${n === '1' ? '1 indexed blob lies' : `${n} indexed blobs lie`} beyond its end: ` +
          ex.map((e) => `${e.hex} at offset ${e.offset}, ${e.length} bytes`).join('; ') +
          (Number(n) > ex.length ? '; …' : ''),
      );
    }
    if (size > g.stored) this.s.counts.deadBytes += size - g.stored;
    if (this.s.opts.verifyBlobs) await this.verifyObject(g.object, size);
  }

  /** Reads the object once, front to back, hashing every indexed blob in it as its bytes go by. */
  async verifyObject(object: string, size: number): Promise<void> {
    const all = await this.s.q<LocationRow & { digest: Buffer }>(
      `SELECT b.digest, ${LOCATION_COLUMNS} FROM blobs b WHERE b.object = $1 ORDER BY b."offset", b.length`,
      [object],
    );
    // Rows that cannot be verified were reported above.
    const sound: (Location & { digest: Buffer })[] = [];
    for (const row of all) {
      let r: Location & { digest: Buffer };
      try {
        r = { digest: row.digest, ...locationOf(row) };
      } catch (err) {
        this.s.report('error', 'object', object, `blob ${row.digest.toString('hex')}: ${message(err)}`);
        continue;
      }
      if (r.digest.length === 32 && r.offset >= 0 && r.length >= 0 && r.offset + storedLength(r) <= size) sound.push(r);
    }
    const mismatch = (r: { digest: Buffer; offset: number; length: number }, got: Buffer): void => {
      this.s.counts.verifiedBlobs++;
      if (got.equals(r.digest)) return;
      const hex = r.digest.toString('hex');
      this.s.badBlobs.set(hex, `its bytes in ${object} do not hash to it`);
      this.s.report('error', 'object', object, `blob ${hex} (offset ${r.offset}, ${r.length} bytes) hashes to ${b3Hex(got)}`);
    };
    const corrupt = (r: { digest: Buffer; offset: number }, err: unknown): void => {
      this.s.counts.verifiedBlobs++;
      const hex = r.digest.toString('hex');
      this.s.badBlobs.set(hex, `its compressed bytes in ${object} are corrupt`);
      this.s.report('error', 'object', object, `blob ${hex} (offset ${r.offset}): ${message(err)}`);
    };
    const ranged = [];
    for (const r of sound) {
      if (r.length === 0) mismatch(r, EMPTY_BLOB_DIGEST);
      else if (r.codec === 'zstd-frames') await this.verifyFramed(r, mismatch, corrupt);
      else ranged.push(r);
    }
    if (ranged.length === 0) return;
    const end = Math.max(...ranged.map((r) => r.offset + storedLength(r)));
    let next = 0;
    // Compressed entries gather their stored bytes (a packed blob: at most a
    // few MiB) and are checked once complete.
    let active: { r: (typeof ranged)[number]; hash: Blake3Stream; parts?: Uint8Array[] }[] = [];
    let pos = 0;
    try {
      for await (const chunk of await this.s.s3.range(object, 0, end)) {
        const ce = pos + chunk.length;
        while (next < ranged.length && ranged[next].offset < ce) {
          const r = ranged[next++];
          active.push({ r, hash: new Blake3Stream(), parts: r.codec ? [] : undefined });
        }
        const still: typeof active = [];
        for (const a of active) {
          const from = Math.max(a.r.offset, pos);
          const aEnd = a.r.offset + storedLength(a.r);
          const to = Math.min(aEnd, ce);
          if (to > from) {
            if (a.parts) a.parts.push(chunk.subarray(from - pos, to - pos));
            else a.hash.update(chunk.subarray(from - pos, to - pos));
          }
          if (aEnd > ce) still.push(a);
          else if (!a.parts) mismatch(a.r, a.hash.digest());
          else {
            try {
              await inflateWhole(a.r.digest, a.r, a.parts); // checks the digest
              mismatch(a.r, a.r.digest);
            } catch (err) {
              corrupt(a.r, err);
            }
          }
        }
        active = still;
        pos = ce;
        if (pos >= end) break;
      }
    } catch (err) {
      this.s.report('error', 'object', object, `cannot be read: ${message(err)}`);
      for (const r of ranged.slice(next)) this.s.badBlobs.set(r.digest.toString('hex'), `${object} cannot be read`);
      for (const a of active) this.s.badBlobs.set(a.r.digest.toString('hex'), `${object} cannot be read`);
      return;
    } finally {
      this.s.counts.verifiedBytes += pos;
    }
    if (pos < end) {
      this.s.report('error', 'object', object, `S3 returned ${pos} of its first ${end} bytes (the listing said ${size})`);
      for (const a of active) this.s.badBlobs.set(a.r.digest.toString('hex'), `${object} is short`);
      for (const r of ranged.slice(next)) this.s.badBlobs.set(r.digest.toString('hex'), `${object} is short`);
    }
  }

  /** A blob stored as zstd frames: every frame decompressed and checked, the whole hashed. */
  private async verifyFramed(
    r: Location & { digest: Buffer },
    mismatch: (r: Location & { digest: Buffer }, got: Buffer) => void,
    corrupt: (r: Location & { digest: Buffer }, err: unknown) => void,
  ): Promise<void> {
    const hash = new Blake3Stream();
    try {
      for await (const chunk of readCompressedWhole(this.s.s3, r.digest, r)) hash.update(chunk);
    } catch (err) {
      return corrupt(r, err);
    } finally {
      this.s.counts.verifiedBytes += storedLength(r);
    }
    mismatch(r, hash.digest());
  }

  /** Index rows of these blobs (32-byte digests), by hex digest. */
  async blobRows(digests: Iterable<Uint8Array>): Promise<Map<string, BlobRow>> {
    const keys = new Map<string, Buffer>();
    for (const d of digests) if (d.length === 32) keys.set(b3Hex(d), Buffer.from(d));
    const out = new Map<string, BlobRow>();
    for (const batch of chunks([...keys.values()], LOOKUP_BATCH)) {
      const rows = await this.s.q<LocationRow & { digest: Buffer }>(BLOB_ROWS_SQL, [batch]);
      for (const r of rows) {
        let loc: Location;
        try {
          loc = locationOf(r);
        } catch {
          continue; // an unknown codec: reported by the object checks
        }
        out.set(r.digest.toString('hex'), { ...loc, stored: storedLength(loc) });
      }
    }
    return out;
  }

  /** Why the blob a FileNode names cannot serve it, if it cannot. */
  async blobProblem(digest: Uint8Array, size: number, rows: Map<string, BlobRow>): Promise<string | undefined> {
    if (digest.length !== 32) return `invalid digest length ${digest.length}`;
    const hex = b3Hex(digest);
    const row = rows.get(hex);
    if (!row) return `blob ${hex} is not indexed`;
    if (row.length !== size) return `the entry says ${size} bytes but blob ${hex} is indexed with ${row.length}`;
    const objSize = await this.objectSize(row.object);
    if (objSize === undefined) return `blob ${hex} is in ${row.object}, which is missing`;
    if (row.offset + row.stored > objSize) return `blob ${hex} lies beyond the end of ${row.object} (${objSize} bytes)`;
    const bad = this.s.badBlobs.get(hex);
    if (bad) return `blob ${hex} is corrupt: ${bad}`;
    return undefined;
  }
}
