// S3 objects and the blob index of a scale-out store: every object the index
// names exists and is long enough, (deep) every blob hashes to its digest.
import { HeadObjectCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { Blake3Stream, EMPTY_BLOB_DIGEST, b3Hex } from '../castore/digest.js';
import { storageError } from '../castore/errors.js';
import { forEachLimit } from '../util/for-each-limit.js';
import { message } from './report.js';
import { ScaleoutCheckState, OBJECT_PAGE, LOOKUP_BATCH, EXAMPLES, type BlobRow, type ObjectGroup, chunks } from './scaleout-check-state.js';

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
      const rows = await this.s.q<{ object: string; n: string; bytes: string | null; end_: string | null; bad: string }>(
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
      const ex = await this.examples(g.object, `"offset" + length > $2`, [size]);
      const n = (await this.s.q<{ n: string }>(`SELECT count(*) AS n FROM blobs WHERE object = $1 AND "offset" + length > $2`, [g.object, size]))[0].n;
      this.s.report(
        'error',
        'object',
        g.object,
        `has ${size} bytes, but ${n === '1' ? '1 indexed blob lies' : `${n} indexed blobs lie`} beyond its end: ` +
          ex.map((e) => `${e.hex} at offset ${e.offset}, ${e.length} bytes`).join('; ') +
          (Number(n) > ex.length ? '; …' : ''),
      );
    }
    if (size > g.bytes) this.s.counts.deadBytes += size - g.bytes;
    if (this.s.opts.verifyBlobs) await this.verifyObject(g.object, size);
  }

  /** Reads the object once, front to back, hashing every indexed blob in it as its bytes go by. */
  async verifyObject(object: string, size: number): Promise<void> {
    const all = await this.s.q<{ digest: Buffer; offset: string; length: string }>(
      'SELECT digest, "offset", length FROM blobs WHERE object = $1 ORDER BY "offset", length',
      [object],
    );
    // Rows that cannot be verified were reported above.
    const rows = all
      .map((r) => ({ digest: r.digest, offset: Number(r.offset), length: Number(r.length) }))
      .filter((r) => r.digest.length === 32 && r.offset >= 0 && r.length >= 0 && r.offset + r.length <= size);
    const mismatch = (r: { digest: Buffer; offset: number; length: number }, got: Buffer): void => {
      this.s.counts.verifiedBlobs++;
      if (got.equals(r.digest)) return;
      const hex = r.digest.toString('hex');
      this.s.badBlobs.set(hex, `its bytes in ${object} do not hash to it`);
      this.s.report('error', 'object', object, `blob ${hex} (offset ${r.offset}, ${r.length} bytes) hashes to ${b3Hex(got)}`);
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
      for await (const chunk of await this.s.s3.range(object, 0, end)) {
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

  /** Index rows of these blobs (32-byte digests), by hex digest. */
  async blobRows(digests: Iterable<Uint8Array>): Promise<Map<string, BlobRow>> {
    const keys = new Map<string, Buffer>();
    for (const d of digests) if (d.length === 32) keys.set(b3Hex(d), Buffer.from(d));
    const out = new Map<string, BlobRow>();
    for (const batch of chunks([...keys.values()], LOOKUP_BATCH)) {
      const rows = await this.s.q<{ digest: Buffer; object: string; offset: string; length: string }>(
        'SELECT b.digest, b.object, b."offset", b.length FROM unnest($1::bytea[]) AS k(d) JOIN blobs b ON b.digest = k.d',
        [batch],
      );
      for (const r of rows) out.set(r.digest.toString('hex'), { object: r.object, offset: Number(r.offset), length: Number(r.length) });
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
    if (row.offset + row.length > objSize) return `blob ${hex} lies beyond the end of ${row.object} (${objSize} bytes)`;
    const bad = this.s.badBlobs.get(hex);
    if (bad) return `blob ${hex} is corrupt: ${bad}`;
    return undefined;
  }
}
