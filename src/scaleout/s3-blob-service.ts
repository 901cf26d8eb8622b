// Blob bytes in S3, their index in PostgreSQL.
//
// Blobs up to SMALL_MAX are buffered and packed with others (packer.ts);
// larger ones stream into an object of their own (part-upload.ts: multipart above
// PART_SIZE). Objects get random names — a blob's digest is known only
// after its last byte — and the index maps digest → (object, offset,
// length). A blob is indexed only after its bytes are durably in S3, so a
// crash can orphan bytes (fsck reports them) but never leave an index entry
// pointing at nothing. Stat and read look up the index in batches.
// Bytes are stored zstd-compressed where that pays (blob-codec.ts): packed
// blobs one by one (packer.ts), large ones as frames (frame-upload.ts).
import { randomUUID } from 'node:crypto';
import type { BlobService, BlobWriter, ReadAheadHint, ReadOptions } from '../castore/blob-service.js';
import { Blake3Stream, b3String, checkB3, digestKey } from '../castore/digest.js';
import { CastoreError, storageError } from '../castore/errors.js';
import { parseS3Addr } from './addr.js';
import { Batcher } from './batcher.js';
import { Packer, PUTS_IN_FLIGHT } from './packer.js';
import { COMPRESSION_SETTING } from './schema.js';
import { openPgIndex, type PgIndex } from './pg-index.js';
import { ObjectGone, S3Objects } from './s3-objects.js';
import { PartUpload, PART_UPLOAD_HOLDS } from './part-upload.js';
import { Limiter } from '../util/limiter.js';
import { PackCache } from './pack-cache.js';
import { readLocated, readPart } from './s3-reads.js';
import { DEFAULT_LEVEL, LOCATION_COLUMNS, inflateWhole, locationOf, type Compression, type Location, type LocationRow } from './blob-codec.js';
import { FRAME_UPLOAD_HOLDS, FrameUpload } from './frame-upload.js';
import { digestLookup, digestsParam } from './pg-digests.js';
import { readCompressedWhole } from './compressed-reads.js';

export const SMALL_MAX = 1 << 20;
/**
 * Large uploads filling a part at once, per store: with the process's
 * sending slots this bounds the part buffers (part-buffers.ts). 3, not 4:
 * one part buffer less at a copy's peak RSS, no slower in alternated runs.
 */
export const LARGE_UPLOADS = 3;
/**
 * NAR rendering keeps this many GETs in flight within this many bytes:
 * one GET streams at a fraction of what the server gives several.
 */
const READ_AHEAD: ReadAheadHint = { reads: 16, bytes: 64 << 20, sizesFromIndex: true, rangeBytes: 8 << 20 };
/**
 * Locations sizeOf found, kept for the read that follows it (NAR rendering
 * asks every file's size ahead, then reads it): without them each blob was
 * looked up in the index twice. Taken once; the oldest go first.
 */
const SIZED_KEPT = 32_768;
/** Digests per index query of sizesOf. */
const SIZES_PER_QUERY = 4096;
/** Where the blobs of digests ($1, digestsParam's) are, by position. */
export const LOCATIONS_SQL = `SELECT k.i, ${LOCATION_COLUMNS} FROM ${digestLookup(1, 'blobs', 'b', LOCATION_COLUMNS)}`;
/** Sizes of the blobs of digests ($1), by position. */
export const SIZES_SQL = `SELECT k.i, b.length FROM ${digestLookup(1, 'blobs', 'b', 'b.length')}`;

export class S3BlobService implements BlobService {
  /** A small blob's bytes, then a large one's parts in flight and filling, and its frames compressing. */
  readonly heldPerWriter = SMALL_MAX + PART_UPLOAD_HOLDS + FRAME_UPLOAD_HOLDS;
  private readonly s3: S3Objects;
  private readonly db: PgIndex;
  private readonly packer: Packer;
  private readonly locations: Batcher<Location>;
  private readonly largeSlots = new Limiter(LARGE_UPLOADS);
  private readonly packCache: PackCache;
  readonly readAhead = READ_AHEAD;
  /** A small blob's Put resolves once its whole pack is durable: packs fill only with thousands in flight. */
  readonly putsInFlight = PUTS_IN_FLIGHT;
  /**
   * Locations sizeOf found (SIZED_KEPT at most): the newer half and the
   * older one, swapped when the newer fills. Evicting a Map's oldest entry
   * one call at a time (keys().next() past every deleted one) was ~0.15 s
   * of rendering the bench's /usr/share.
   */
  private sizedNew = new Map<string, Location>();
  private sizedOld = new Map<string, Location>();
  private readonly compression: Compression;
  /** Digests looked up in the blob index so far, for tests and benchmarks. */
  indexLookups = 0;

  constructor(addr: string) {
    const loc = parseS3Addr(addr);
    this.s3 = new S3Objects(loc);
    this.db = openPgIndex(loc.indexUrl);
    this.compression = loc.compression ?? this.storeDefaultCompression();
    this.packer = new Packer(this.s3, this.db, SMALL_MAX, this.compression);
    this.packCache = new PackCache(this.s3, this.db);
    this.locations = new Batcher(async (keys) => {
      this.indexLookups += keys.length;
      const r = await this.db.query<LocationRow & { i: number }>(LOCATIONS_SQL, [digestsParam(keys)]);
      return new Map(r.rows.map((row) => [digestKey(keys[row.i]), locationOf(row)]));
    });
  }

  /** The store's own default (schema.ts), decided before any blob is compressed. */
  private storeDefaultCompression(): Compression {
    const c: Compression = {};
    c.known = this.db.query<{ value: string }>('SELECT value FROM store_settings WHERE name = $1', [COMPRESSION_SETTING]).then((r) => {
      if (r.rows[0]?.value === 'zstd') c.level = DEFAULT_LEVEL;
    });
    c.known.catch(() => {}); // a write awaiting it gets the error
    return c;
  }

  /** HTTP requests this service has sent to S3 so far. */
  get s3Requests(): number {
    return this.s3.requests;
  }

  /** From the index: what is indexed is what reads find (orphaned objects are fsck's business). */
  async stats() {
    const r = await this.db.query<{ n: string; b: string }>('SELECT count(*) AS n, coalesce(sum(length), 0) AS b FROM blobs');
    return { count: Number(r.rows[0].n), bytes: Number(r.rows[0].b) };
  }

  /** For reads: a cached location may be stale (moved by a collector), which read() handles. */
  /**
   * `forWindows`: the read goes through the pack cache, which keeps the
   * location; NAR rendering's reads (readMany, readRange) do not, so their
   * tens of thousands of locations are not kept for hours in a daemon.
   */
  private async locate(digest: Uint8Array, forWindows = true): Promise<Location | undefined> {
    const id = digestKey(digest);
    const known = this.packCache.locations.get(id) ?? this.takeSized(id, forWindows);
    if (known) return known;
    const loc = await this.locations.get(digest);
    if (forWindows && loc && loc.object.startsWith('packs/')) this.packCache.remember(id, loc);
    return loc;
  }

  // Stat and sizeOf ask the index, never the read cache: a PathInfo Put
  // checks its content with them, and a blob a collector deleted must not
  // look present (pg-gc-fence.ts).
  async stat(digest: Uint8Array) {
    checkB3(digest);
    return (await this.locations.get(digest)) ? { chunks: [] } : undefined;
  }

  async sizeOf(digest: Uint8Array): Promise<number | undefined> {
    checkB3(digest);
    const loc = await this.locations.get(digest);
    if (loc) {
      const id = digestKey(digest);
      this.sizedOld.delete(id);
      this.sizedNew.set(id, loc);
      if (this.sizedNew.size >= SIZED_KEPT / 2) {
        this.sizedOld = this.sizedNew;
        this.sizedNew = new Map();
      }
    }
    return loc?.length;
  }

  /**
   * Many sizes in one query per SIZES_PER_QUERY, straight from the index
   * (a PathInfo Put's content check, ~1,000 files a call). Not kept for
   * reads as sizeOf's are: a copy's check of 50,000 files cost a promise,
   * a key and a kept location each (the copy's largest allocator).
   */
  async sizesOf(digests: Uint8Array[]): Promise<(number | undefined)[]> {
    digests.forEach((d) => checkB3(d));
    const sizes = new Map<string, number>();
    for (let at = 0; at < digests.length; at += SIZES_PER_QUERY) {
      const some = digests.slice(at, at + SIZES_PER_QUERY);
      this.indexLookups += some.length;
      const r = await this.db.query<{ i: number; length: string }>(SIZES_SQL, [digestsParam(some)]);
      for (const row of r.rows) sizes.set(digestKey(some[row.i]), Number(row.length));
    }
    return digests.map((d) => sizes.get(digestKey(d)));
  }

  private takeSized(id: string, forWindows: boolean): Location | undefined {
    const loc = this.sizedNew.get(id) ?? this.sizedOld.get(id);
    if (loc) {
      this.sizedNew.delete(id);
      this.sizedOld.delete(id);
      if (forWindows && loc.object.startsWith('packs/')) this.packCache.remember(id, loc);
    }
    return loc;
  }

  /** A packed blob's bytes (decompressed and checked); if its pack is gone (rewritten by a collector), from where the index says it is now. */
  private async packed(digest: Uint8Array, loc: Location): Promise<Uint8Array[]> {
    try {
      return await inflateWhole(digest, loc, [await this.packCache.slice(loc)]);
    } catch (err) {
      if (!(err instanceof ObjectGone)) throw err;
      this.packCache.forgetObject(loc.object);
      const now = await this.locations.get(digest);
      if (!now) throw storageError(`blob ${b3String(digest)}: ${loc.object} was deleted by a garbage collection, and so was the blob`, err);
      if (now.object === loc.object) throw err;
      if (now.object.startsWith('packs/')) this.packCache.remember(digestKey(digest), now);
      return inflateWhole(digest, now, [await this.packCache.slice(now)]);
    }
  }

  async readMany(digests: Uint8Array[], maxBytes: number[], opts?: ReadOptions): Promise<(Uint8Array[] | undefined)[]> {
    digests.forEach((d) => checkB3(d));
    return this.atCurrentPlaces(digests, (locs) => readLocated(this.s3, digests, locs, maxBytes, opts));
  }

  async readRange(digest: Uint8Array, offset: number, length: number, opts?: ReadOptions): Promise<Uint8Array[] | undefined> {
    checkB3(digest);
    return this.atCurrentPlaces([digest], ([loc]) => (loc ? readPart(this.s3, digest, loc, offset, length, opts) : Promise.resolve(undefined)));
  }

  /**
   * Reads at the cached locations; if an object is gone (a pack a collector
   * rewrote), forgets what was cached about it and reads once more where the
   * index says the blobs are now — else a long-running daemon would fail
   * every NAR that needs a moved blob.
   */
  private async atCurrentPlaces<T>(digests: Uint8Array[], run: (locs: (Location | undefined)[]) => Promise<T>): Promise<T> {
    const locs = await Promise.all(digests.map((d) => this.locate(d, false)));
    try {
      return await run(locs);
    } catch (err) {
      if (!(err instanceof ObjectGone)) throw err;
      for (const l of locs) if (l) this.packCache.forgetObject(l.object);
      return run(await Promise.all(digests.map((d) => this.locate(d, false))));
    }
  }

  /** Locations the pack cache keeps (at most 200,000), for tests. */
  get locationsKept(): number {
    return this.packCache.locations.size;
  }

  /** Bytes received from S3 and GETs still open, for tests and benchmarks. */
  get s3Reads(): { bytesReceived: number; getsInFlight: number } {
    return { bytesReceived: this.s3.bytesReceived, getsInFlight: this.s3.getsInFlight };
  }

  async read(digest: Uint8Array, opts?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    checkB3(digest);
    const loc = await this.locate(digest);
    if (!loc) return undefined;
    if (loc.length === 0) return (async function* () {})();
    const name = b3String(digest);
    if (loc.object.startsWith('packs/') && loc.length <= SMALL_MAX) {
      let bytes: Uint8Array[];
      try {
        bytes = await this.packed(digest, loc);
      } catch (err) {
        throw err instanceof CastoreError ? err : storageError(`blob ${name}: ${(err as Error).message}`, err);
      }
      return (async function* () {
        yield* bytes;
      })();
    }
    if (loc.codec) return readCompressedWhole(this.s3, digest, loc, opts?.signal);
    const body = await this.s3.range(loc.object, loc.offset, loc.length, opts?.signal);
    return (async function* () {
      let got = 0;
      for await (const chunk of body) {
        got += chunk.length;
        yield chunk;
      }
      if (got !== loc.length) throw storageError(`blob ${name}: S3 returned ${got} of ${loc.length} bytes from ${loc.object}`);
    })();
  }

  readonly putSmallUpTo = SMALL_MAX;
  /**
   * A packed blob is not Stat-ed first: its pack asks the index about all
   * its blobs in one query before the PUT (packer.ts) and stores only the
   * missing ones, so the Stat (a batched lookup, its promise and key
   * per blob) only repeated that. A present blob costs a copy into the pack.
   */
  readonly putWithoutStatUpTo = SMALL_MAX;

  /**
   * A small blob given whole, packed in one call: put()'s writer, with its
   * closures and async steps, was most of a copy's heap with thousands of
   * Puts in flight (and the garbage collections that came with it).
   */
  putSmall(bytes: Uint8Array, copied?: () => void): Promise<Buffer> {
    if (bytes.length > SMALL_MAX) return Promise.reject(new CastoreError('invalid', `putSmall takes at most ${SMALL_MAX} bytes, not ${bytes.length}`));
    // With room in the packer (nearly always), one call and one promise per blob.
    if (!this.packer.hasRoom()) return this.putSmallWhenRoom(bytes, copied);
    const { digest, done } = this.packer.add([bytes], bytes.length);
    copied?.();
    return done.then(() => digest);
  }

  private async putSmallWhenRoom(bytes: Uint8Array, copied?: () => void): Promise<Buffer> {
    const { digest, done } = await this.packer.addWhenRoom([bytes], bytes.length);
    copied?.();
    await done;
    return digest;
  }

  put(): BlobWriter {
    // Small blobs are hashed in one call at close: a Blake3Hasher costs
    // 10-20 µs to create, more than hashing a small file.
    let hash: Blake3Stream | undefined;
    let small: Uint8Array[] | undefined = [];
    let smallSize = 0;
    /** Callers to tell once the small chunks are copied (their memory is read into again: no garbage per chunk). */
    const smallReleased: (() => void)[] = [];
    const releaseSmall = () => {
      for (const r of smallReleased.splice(0)) r();
    };
    let total = 0;
    let large: PartUpload | undefined;
    let frames: FrameUpload | undefined;
    let finished = false;
    /** Set by abort(): a close waiting for room in the packer stops (an AbortController per blob cost a copy 0.5 s). */
    let aborted = false;
    let releaseSlot: (() => void) | undefined;
    const acquireSlot = () =>
      new Promise<void>((got) => {
        void this.largeSlots.run(() => new Promise<void>((release) => {
          releaseSlot = release;
          got();
        }));
      });

    const startLarge = async () => {
      large = new PartUpload(this.s3, `blobs/${randomUUID()}`);
      frames = new FrameUpload(large, this.compression);
      hash = new Blake3Stream();
      const parts = small!;
      small = undefined;
      for (const part of parts) {
        hash.update(part);
        await frames.write(part);
      }
      releaseSmall();
    };
    const discardLarge = async () => {
      if (!large) return;
      await large.abort();
      // A single-PUT upload may have completed already.
      await this.s3.delete(large.object).catch(() => {});
    };

    return {
      write: async (chunk, released) => {
        if (finished) throw new Error('blob writer already closed');
        if (chunk.length === 0) return released?.();
        // Kept, not copied: a caller does not change a chunk it has written (BlobWriter).
        total += chunk.length;
        if (small) {
          small.push(chunk);
          if (released) smallReleased.push(released);
          smallSize += chunk.length;
          if (smallSize > SMALL_MAX) {
            await acquireSlot();
            await startLarge();
          }
          return;
        }
        hash!.update(chunk);
        await frames!.write(chunk);
        released?.(); // copied into a part
      },
      close: async (signal) => {
        if (finished) throw new Error('blob writer already closed');
        finished = true;
        if (small) {
          // Copied into its pack, not kept: a view could pin a much larger buffer (a daemon's network read).
          signal?.throwIfAborted();
          const { digest, done } = await this.packer.addWhenRoom(small, smallSize, () => {
            if (aborted) throw new Error('blob writer aborted');
            signal?.throwIfAborted();
          });
          small = undefined;
          releaseSmall();
          await done;
          return digest;
        }
        const digest = hash!.digest();
        const l = large!;
        let framed;
        try {
          framed = await frames!.finish();
          await l.finish();
          signal?.throwIfAborted();
        } catch (err) {
          await discardLarge();
          throw err;
        } finally {
          releaseSlot?.();
        }
        const r = await this.db.query(
          'INSERT INTO blobs (digest, object, "offset", length, codec, stored, frames) VALUES ($1, $2, 0, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING digest',
          [digest, l.object, total, framed.codec, framed.stored, framed.frames],
        );
        // Someone indexed the same bytes first: ours are nobody's.
        if (r.rowCount === 0) await this.s3.delete(l.object).catch(() => {});
        return digest;
      },
      abort: async () => {
        finished = true;
        aborted = true;
        small = undefined;
        releaseSmall();
        try {
          await discardLarge();
        } finally {
          releaseSlot?.();
        }
      },
    };
  }

  async close(): Promise<void> {
    await this.packer.flush();
    this.s3.close();
    await this.db.release();
  }
}
