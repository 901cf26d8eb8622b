// Packs small blobs into shared S3 objects, so a closure of tens of
// thousands of small files costs a few hundred PUTs, not one each.
//
// A blob's Put resolves only once its pack is durably in S3 *and* indexed,
// so batching never weakens a Put's promise. A pack is sealed when it
// reaches PACK_TARGET, or once it is LINGER_MS old and an upload slot is
// free: a lone blob waits LINGER_MS; under load, every Put a client has in
// flight joins the open pack. So a client must keep thousands in flight
// (PUTS_IN_FLIGHT): with 256, every pack of a copy held 256 small files
// (~1 MiB) and the next could only start filling once it was durable —
// one pack, one PUT and two queries at a time, 5× a copy to disk.
// Packs upload UPLOAD_SLOTS at once; one more sealed pack may wait for a
// slot, and Puts beyond that wait (addWhenRoom): the packer's memory is
// bounded whatever the client keeps in flight.
//
// A blob's bytes are copied once, straight into its pack's buffer, and
// hashed there; that buffer is the PUT's body. (A copy per blob, then one
// per pack, cost a copy → S3 seconds of memcpy, page faults, and garbage
// collections for tens of thousands of fresh ArrayBuffers.) A buffer whose
// pack is stored is reused for the next one, while packs keep coming: a
// fresh 17 MiB per pack cost a page fault per 4 KiB and, as external
// memory, V8 answered with full garbage collections (~80 per copy). Spare
// buffers go after SPARE_KEEP_MS idle, not at every pause: freeing them
// each time (20-30 times a copy) made glibc raise its mmap threshold and
// serve the next ones from its heap, where freed memory stays resident.
//
// Packs of 6 MiB, not 16 or 8: the at most 5 pack buffers were 85 MiB of
// a copy's peak RSS at 16, 45 at 8 (35 at 6); copy → S3 was as fast with
// 6 MiB packs in alternated runs.
import { randomUUID } from 'node:crypto';
import type { S3Objects } from './s3-objects.js';
import type { PgIndex } from './pg-index.js';
import { blake3, digestKey } from '../castore/digest.js';
import { mappedBuffer } from '../util/mapped-buffer.js';
import type { Compression } from './blob-codec.js';
import { packRows } from './pack-compress.js';
import { digestLookup, digestRows, digestsParam } from './pg-digests.js';

export const PACK_TARGET = 6 << 20;
/** Packs uploading at once (PUT, then the index INSERT). */
export const UPLOAD_SLOTS = 3;
/** Small-blob Puts a client should keep in flight to fill packs (s3-blob-service.ts). */
export const PUTS_IN_FLIGHT = 4096;
const LINGER_MS = 50;
/** Which of a pack's digests ($1) another writer has indexed meanwhile, by position. */
export const PRESENT_SQL = `SELECT k.i FROM ${digestLookup(1, 'blobs', 'b', 'b.digest')}`;
/** A spare pack buffer goes after this long unused (a daemon between copies gives its memory back). */
const SPARE_KEEP_MS = 1_000;

interface Entry {
  digest: Buffer;
  /** Its key in inFlight (digestKey). */
  key: string;
  offset: number;
  length: number;
}

interface Pack {
  buf: Buffer;
  entries: Entry[];
  size: number;
  settle: (err?: unknown) => void;
  done: Promise<void>;
}

export class Packer {
  private open: Pack | undefined;
  private readonly sealed: Pack[] = [];
  private uploading = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Digests waiting in an open or uploading pack, so duplicates share it. */
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Buffers of stored packs, for the next ones (dropped when nothing is left to pack). */
  private spare: Buffer[] = [];
  /** Adds waiting for the sealed pack to get a slot. */
  private roomWaiters: (() => void)[] = [];
  private dropTimer: NodeJS.Timeout | undefined;
  /** Pack buffers allocated so far (tests: reused, not made anew per pack). */
  buffersMade = 0;

  constructor(
    private readonly s3: S3Objects,
    private readonly db: PgIndex,
    /** The largest blob added: a pack under PACK_TARGET always has room for one more. */
    private readonly blobMax: number,
    /** How blobs are stored in the packs (pack-compress.ts). */
    private readonly compression: Compression = {},
  ) {}

  /**
   * Copies a blob (`chunks`, `size` bytes in all, at most blobMax) into the
   * open pack and hashes it there. `done` resolves once it is durably
   * stored and indexed. The chunks are not kept.
   */
  add(chunks: readonly Uint8Array[], size: number): { digest: Buffer; done: Promise<void> } {
    if (size > this.blobMax) throw new RangeError(`a packed blob holds at most ${this.blobMax} bytes, not ${size}`);
    const pack = (this.open ??= this.newPack());
    const offset = pack.size;
    let at = offset;
    for (const c of chunks) {
      if (at + c.length > offset + size) throw new RangeError(`blob chunks hold more than the ${size} bytes stated`);
      pack.buf.set(c, at);
      at += c.length;
    }
    if (at !== offset + size) throw new RangeError(`blob chunks hold ${at - offset} bytes, not the ${size} stated`);
    const digest = blake3(pack.buf.subarray(offset, at));
    const key = digestKey(digest);
    const existing = this.inFlight.get(key);
    // The same bytes wait in a pack already: share its upload (the copy just made is left unused).
    if (existing) return { digest, done: existing };
    pack.entries.push({ digest, key, offset, length: size });
    pack.size = at;
    // Every blob of a pack shares its promise; settle() forgets their keys first (a promise per blob was garbage).
    const done = pack.done;
    this.inFlight.set(key, done);
    if (pack.size >= PACK_TARGET) this.seal();
    else if (!this.timer) this.timer = setTimeout(() => this.lingered(), LINGER_MS);
    return { digest, done };
  }

  /** Whether add() may be called now (addWhenRoom would not wait). */
  hasRoom(): boolean {
    return this.sealed.length === 0;
  }

  /**
   * add(), once no sealed pack waits for an upload slot: at most the open
   * pack, one sealed and UPLOAD_SLOTS uploading are in memory. The chunks
   * are the caller's until this resolves.
   */
  async addWhenRoom(chunks: readonly Uint8Array[], size: number, stopped?: () => void): Promise<{ digest: Buffer; done: Promise<void> }> {
    // Checked again on each wake-up, and add() runs in the same turn as the check.
    while (this.sealed.length > 0) {
      await new Promise<void>((r) => this.roomWaiters.push(r));
      stopped?.(); // throws if the Put was aborted meanwhile: the chunks may be reused already
    }
    return this.add(chunks, size);
  }

  /** Uploads whatever is open now, and waits until every pack is settled. */
  async flush(): Promise<void> {
    this.seal();
    await Promise.allSettled([...this.inFlight.values()]);
  }

  private newPack(): Pack {
    let settle!: (err?: unknown) => void;
    const done = new Promise<void>((res, rej) => (settle = (err) => (err ? rej(err) : res())));
    done.catch(() => {});
    let buf = this.spare.pop();
    if (!buf) {
      this.buffersMade++;
      buf = mappedBuffer(PACK_TARGET + this.blobMax); // not malloc's (util/mapped-buffer.ts)
    }
    return { buf, entries: [], size: 0, settle, done };
  }

  private lingered(): void {
    this.timer = undefined;
    // With every slot busy, the next upload to finish seals it.
    if (this.uploading < UPLOAD_SLOTS) this.seal();
  }

  private seal(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.open && this.open.entries.length) this.sealed.push(this.open);
    this.open = undefined;
    this.pump();
  }

  private pump(): void {
    while (this.uploading < UPLOAD_SLOTS && this.sealed.length) {
      const pack = this.sealed.shift()!;
      this.uploading++;
      for (const w of this.roomWaiters.splice(0)) w();
      this.upload(pack).then(
        () => {
          // Only after a success: a failed PUT's body might still be in the SDK's hands.
          if (this.spare.length < UPLOAD_SLOTS) this.spare.push(pack.buf);
          this.settle(pack);
        },
        (err) => this.settle(pack, err),
      ).finally(() => {
        this.uploading--;
        if (!this.sealed.length && this.open && !this.timer) this.seal();
        else this.pump();
        if (!this.open && !this.uploading && !this.sealed.length) this.dropSparesWhenIdle();
      });
    }
  }

  /** Its blobs are no longer in flight (a later add of one starts anew, e.g. after a failure), then its promise settles. */
  private settle(pack: Pack, err?: unknown): void {
    for (const e of pack.entries) if (this.inFlight.get(e.key) === pack.done) this.inFlight.delete(e.key);
    pack.settle(err);
  }

  /** Idle (a daemon between copies): the spare buffers go unless packs come again soon. */
  private dropSparesWhenIdle(): void {
    clearTimeout(this.dropTimer);
    this.dropTimer = setTimeout(() => {
      if (!this.open && !this.uploading && !this.sealed.length) this.spare = [];
    }, SPARE_KEEP_MS);
    this.dropTimer.unref();
  }

  private async upload(pack: Pack): Promise<void> {
    // Skip what another writer (or daemon) has indexed meanwhile.
    const present = await this.db.query<{ i: number }>(PRESENT_SQL, [digestsParam(pack.entries.map((e) => e.digest))]);
    const skip = new Set(present.rows.map((r) => r.i));
    const todo = pack.entries.filter((_, i) => !skip.has(i));
    if (!todo.length) return;
    // Compressed where it pays; the pack's buffer as it is when nothing was skipped or compressed.
    const rows = await packRows(pack.buf, pack.size, todo, todo.length === pack.entries.length, this.compression);
    const object = `packs/${randomUUID()}`;
    await this.s3.put(object, rows.body);
    await this.db.query(
      `INSERT INTO blobs (digest, object, "offset", length, codec, stored)
       SELECT k.d, $1, t.o, t.l, t.c, t.s FROM ${digestRows(2)}
       JOIN unnest($3::bigint[], $4::bigint[], $5::text[], $6::bigint[]) WITH ORDINALITY AS t(o, l, c, s, n) ON t.n = k.i + 1
       ON CONFLICT DO NOTHING`,
      // Array literals made by join: node-postgres' own array encoding was a copy → S3's largest JS allocator after the digests.
      [object, digestsParam(rows.digests), arrayLiteral(rows.offsets), arrayLiteral(rows.lengths), arrayLiteral(rows.codecs), arrayLiteral(rows.stored)],
    );
  }
}

/** A PostgreSQL array literal of numbers, NULLs and plain words (codecs: 'zstd'), none of which needs quoting. */
export function arrayLiteral(xs: readonly (number | string | null)[]): string {
  return '{' + xs.map(literal).join(',') + '}';
}

function literal(x: number | string | null): string | number {
  if (x === null) return 'NULL';
  // Unquoted NULL, in any case, is PostgreSQL's null.
  if (typeof x === 'number' || (/^[a-z][a-z0-9-]*$/.test(x) && x !== 'null')) return x;
  throw new RangeError(`not a plain word for an array literal: ${JSON.stringify(x)}`);
}
