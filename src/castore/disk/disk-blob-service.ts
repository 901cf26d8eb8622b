import { existsSync, readdirSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import { ACCEPTED, checkBatch, putBytes, readWhole, WHOLE_READS_AT_ONCE, type BlobBatches, type BlobService, type BlobWriter, type LentRead, type ReadOptions } from '../blob-service.js';
import { b3Hex, b3String, blake3, checkB3 } from '../digest.js';
import { Limiter } from '../../util/limiter.js';
import { CastoreError, storageError } from '../errors.js';
import { exists } from './atomic-files.js';
import { blobSlabs, type AlignedSlabs } from './aligned-slabs.js';
import { blobFileWriter, owned, WRITE_MIN, type BlobFileWriter } from './blob-file-writer.js';
import { directWritesWork } from './direct-io.js';
import type { DiskLayout } from './disk-layout.js';
import { readAhead, ReadBuffers } from './read-ahead.js';
import { PackStore } from './pack-store.js';
import { fileSize, ShardScan } from './shard-scan.js';

/**
 * Blobs up to this size go into packs (pack-store.ts); larger ones get a
 * file each, where the per-file cost is small next to the bytes.
 */
export const PACK_BLOB_MAX = 256 << 10;

/**
 * Blobs of a batch are packed up to this size: they are in memory already
 * (a streamed Put holds at most PACK_BLOB_MAX), and a file each cost a
 * daemon two fsyncs, a rename and a dozen other calls per blob.
 */
export const BATCH_PACK_MAX = 1 << 20;

/** Loose blob files listed at most; a store with more asks the disk about each. */
const LOOSE_LISTING_MAX = 1_000_000;

export class DiskBlobService implements BlobService {
  readonly packs: PackStore;
  /** A small blob's bytes until it is packed, then a gathered write (blob-file-writer.ts). */
  readonly heldPerWriter = PACK_BLOB_MAX + WRITE_MIN;
  /**
   * Names of the loose blob files (large blobs, and small ones of stores
   * from before packs): listed once, then kept up to date with this
   * instance's own writes. A batch Has asks about thousands of digests a
   * store usually lacks, and a stat of each cost a daemon more than the
   * rest of the call. Only "absent" is taken from it, and only for
   * batches: a file another process adds later is missed, and the blob is
   * sent again (harmless); "present" is checked on disk. Null: too many
   * files to list.
   */
  private looseListing: Set<string> | null | undefined;

  /** Whether this store's large blob files are written with O_DIRECT, once probed. */
  private direct: Promise<boolean> | undefined;

  /** `slabs` null: large blob files and packs go through the page cache. */
  constructor(
    private readonly layout: DiskLayout,
    private readonly slabs: AlignedSlabs | null = blobSlabs,
  ) {
    this.packs = new PackStore(join(layout.root, 'packs'), slabs ?? undefined);
    layout.gc.onEpochChange(async () => {
      this.looseListing = undefined;
      await this.packs.revalidate();
    });
  }

  async stat(digest: Uint8Array) {
    checkB3(digest);
    await this.layout.init();
    await this.layout.gc.sync();
    return (await this.has(digest)) ? { chunks: [] } : undefined;
  }

  private readonly looseSizes = new ShardScan(fileSize);

  /** Packed and loose blobs, each digest once. */
  async stats() {
    await this.layout.init();
    let { count, bytes } = await this.packs.totals();
    for (const [name, size] of await this.looseSizes.scan(this.layout.kindDir('blobs'))) {
      if (this.packs.knows(name)) continue;
      count++;
      bytes += size;
    }
    return { count, bytes };
  }

  async sizeOf(digest: Uint8Array): Promise<number | undefined> {
    checkB3(digest);
    await this.layout.init();
    await this.layout.gc.sync();
    const hex = b3Hex(digest);
    // A daemon checks every file of a closure, twice: no object or extra await for the packed ones.
    return this.packs.lengthOf(hex) ?? this.unpackedSize(digest, hex);
  }

  /** One look at the collector's epoch for all, then the packed ones without a promise each. */
  async sizesOf(digests: Uint8Array[]): Promise<(number | undefined)[]> {
    for (const d of digests) checkB3(d);
    await this.layout.init();
    await this.layout.gc.sync();
    const sizes = new Array<number | undefined>(digests.length);
    const misses: number[] = [];
    digests.forEach((d, i) => {
      const packed = this.packs.lengthOf(b3Hex(d));
      if (packed === undefined) misses.push(i);
      else sizes[i] = packed;
    });
    await Promise.all(misses.map(async (i) => void (sizes[i] = await this.unpackedSize(digests[i], b3Hex(digests[i])))));
    return sizes;
  }

  /** A blob the in-memory pack index does not know: a pack written since, a file of its own, or absent. */
  private async unpackedSize(digest: Uint8Array, hex: string): Promise<number | undefined> {
    const packed = (await this.packs.find(hex))?.length;
    if (packed !== undefined) return packed;
    try {
      return (await stat(this.layout.objectPath('blobs', digest))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw storageError(`blob size: ${(err as Error).message}`, err);
    }
  }

  private async has(digest: Uint8Array): Promise<boolean> {
    const hex = b3Hex(digest);
    if (this.packs.knows(hex) || (await exists(this.layout.objectPath('blobs', digest)))) return true;
    return (await this.packs.find(hex)) !== undefined;
  }

  async read(digest: Uint8Array): Promise<AsyncIterable<Uint8Array> | undefined> {
    checkB3(digest);
    await this.layout.init();
    const hex = b3Hex(digest);
    if (this.packs.knows(hex)) return this.readPacked(hex);
    let h: FileHandle;
    try {
      h = await open(this.layout.objectPath('blobs', digest), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.readPacked(hex);
      throw storageError(`opening blob: ${(err as Error).message}`, err);
    }
    return (async function* () {
      try {
        yield* readAhead(h);
      } finally {
        await h.close();
      }
    })();
  }

  /**
   * Buffers lent to readers of large blobs, taken back and read into
   * again: a fresh 1 MiB per chunk cost a daemon's Read of 1 GiB about as
   * much CPU again in page faults (in the thread pool's reads) as the rest
   * of the Read.
   */
  private readonly lentBuffers = new ReadBuffers(8);

  async readLent(digest: Uint8Array): Promise<LentRead | undefined> {
    checkB3(digest);
    await this.layout.init();
    const hex = b3Hex(digest);
    const giveBack = (chunk: Uint8Array): void => this.lentBuffers.give(chunk);
    let h: FileHandle | undefined;
    if (!this.packs.knows(hex)) {
      try {
        h = await open(this.layout.objectPath('blobs', digest), 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storageError(`opening blob: ${(err as Error).message}`, err);
      }
    }
    if (!h) {
      const packed = await this.readPacked(hex);
      return packed && { chunks: packed, giveBack: () => {} };
    }
    const file = h;
    const buffers = this.lentBuffers;
    const chunks = (async function* () {
      try {
        yield* readAhead(file, undefined, buffers, true);
      } finally {
        await file.close();
      }
    })();
    return { chunks, giveBack };
  }

  /**
   * Whole blobs at once, for NAR rendering's groups of small files: packed
   * ones lying together are one read (PackStore.readMany), others are read
   * one by one. Each is at most `maxBytes[i]` long, else the call fails
   * (before reading, where the pack index knows the length). Stops with
   * `opts.signal` (a NAR's client gone): no read starts after it.
   */
  async readMany(digests: Uint8Array[], maxBytes: number[], opts?: ReadOptions): Promise<(Uint8Array[] | undefined)[]> {
    const signal = opts?.signal;
    digests.forEach((d) => checkB3(d));
    signal?.throwIfAborted();
    await this.layout.init();
    const hexes = digests.map((d) => b3Hex(d));
    // Packed as far as this process knows (their lengths checked now), and the rest.
    const packed: number[] = [];
    const others: number[] = [];
    hexes.forEach((hex, i) => {
      const length = this.packs.lengthOf(hex);
      if (length === undefined) return others.push(i);
      if (length > maxBytes[i]) throw storageError(`blob ${b3String(digests[i])} is ${length} bytes, more than the ${maxBytes[i]} bytes its directory entry states`);
      packed.push(i);
    });
    const out = new Array<Uint8Array[] | undefined>(digests.length).fill(undefined);
    let bytes: (Buffer | undefined)[];
    try {
      bytes = await this.packs.readMany(packed.map((i) => hexes[i]));
    } catch (err) {
      throw storageError(`reading packed blobs: ${(err as Error).message}`, err);
    }
    packed.forEach((i, k) => (out[i] = bytes[k] && (bytes[k]!.length > 0 ? [bytes[k]!] : [])));
    // Large blob files, blobs of other processes' new packs: as read() finds them.
    const limit = new Limiter(WHOLE_READS_AT_ONCE);
    await Promise.all(
      others.map((i) =>
        limit.run(async () => {
          signal?.throwIfAborted();
          out[i] = await readWhole(this, digests[i], maxBytes[i], signal);
        }),
      ),
    );
    return out;
  }

  private async readPacked(hex: string): Promise<AsyncIterable<Uint8Array> | undefined> {
    let data;
    try {
      data = await this.packs.read(hex);
    } catch (err) {
      throw storageError(`reading packed blob: ${(err as Error).message}`, err);
    }
    if (!data) return undefined;
    return (async function* () {
      if (data.length > 0) yield data;
    })();
  }

  /**
   * Holds up to PACK_BLOB_MAX bytes in memory, then goes on as a file of
   * its own (see fileWriter). A blob that stays small is packed.
   */
  put(): BlobWriter {
    let held: Uint8Array[] = [];
    // Per held chunk, the caller's release callback (none for a chunk we
    // copied): called once the blob no longer needs that chunk.
    let heldReleases: ((() => void) | undefined)[] = [];
    const releaseHeld = (): void => heldReleases.splice(0).forEach((r) => r?.());
    let heldBytes = 0;
    let file: BlobFileWriter | undefined;
    let finished = false;
    return {
      // Not async: a large Put writes every 16 KiB network piece, and most
      // are only copied into a slab (no promise of their own for those).
      write: (chunk, released) => {
        if (finished) return Promise.reject(new Error('blob writer already closed'));
        if (chunk.length === 0) {
          released?.();
          return ACCEPTED;
        }
        if (!file && heldBytes + chunk.length <= PACK_BLOB_MAX) {
          held.push(released ? chunk : owned(chunk));
          heldReleases.push(released);
          heldBytes += chunk.length;
          return ACCEPTED;
        }
        if (file) return file.write(chunk, released);
        file = this.fileWriter();
        const f = file;
        return (async () => {
          // Each with its release: the file writer gives a chunk back once
          // it has copied or written it, which through the page cache may be
          // after this write() has returned.
          const chunks = held;
          const releases = heldReleases.splice(0);
          held = [];
          for (let i = 0; i < chunks.length; i++) await f.write(chunks[i], releases[i]);
          await f.write(chunk, released);
        })();
      },
      close: async (signal) => {
        if (finished) throw new Error('blob writer already closed');
        finished = true;
        if (file) return file.close(signal);
        // A small blob is hashed in one call, the bytes it is packed with.
        const data = held.length === 1 ? held[0] : Buffer.concat(held);
        const digest = blake3(data);
        try {
          await this.layout.init();
          await this.layout.gc.sync();
          if (this.packs.knows(b3Hex(digest)) || (await exists(this.layout.objectPath('blobs', digest)))) return digest;
          signal?.throwIfAborted(); // the last moment to back out
          await this.packs.append(digest, data);
        } catch (err) {
          if (signal?.aborted || err instanceof CastoreError) throw err;
          throw storageError(`storing blob: ${(err as Error).message}`, err);
        } finally {
          releaseHeld(); // packed (or failed, and no longer queued)
        }
        return digest;
      },
      abort: async () => {
        finished = true;
        held = [];
        releaseHeld();
        await file?.abort();
      },
    };
  }

  private fileWriter(): BlobFileWriter {
    const stored = (digest: Buffer) => this.looseListing?.add(b3Hex(digest));
    const slabs = this.slabs;
    this.direct ??= slabs ? this.layout.init().then(() => directWritesWork(this.layout.tmp, slabs)) : Promise.resolve(false);
    const direct = this.direct;
    let writer: Promise<BlobFileWriter> | undefined;
    let ready: BlobFileWriter | undefined;
    const get = () =>
      (writer ??= direct.then((yes) => (ready = blobFileWriter(this.layout, yes && slabs ? slabs : undefined, stored))));
    return {
      write: (chunk, released) => (ready ? ready.write(chunk, released) : get().then((w) => w.write(chunk, released))),
      close: async (signal) => (await get()).close(signal),
      abort: async () => (writer ? (await writer).abort() : undefined),
    };
  }

  private looseNames(): Set<string> | null {
    if (this.looseListing !== undefined) return this.looseListing;
    const names = new Set<string>();
    const root = this.layout.kindDir('blobs');
    for (const shard of readdirSync(root, { withFileTypes: true })) {
      if (!shard.isDirectory()) continue;
      for (const name of readdirSync(join(root, shard.name))) {
        names.add(name);
        if (names.size > LOOSE_LISTING_MAX) return (this.looseListing = null);
      }
    }
    return (this.looseListing = names);
  }

  /**
   * has() for batches: the listing answers "absent" without a stat, and
   * the packs' index is caught up once for all misses, not per digest (no
   * promise per digest: a batch has up to ~123k).
   */
  private async hasForBatch(digests: Uint8Array[], loose: Set<string> | null): Promise<boolean[]> {
    const present = new Array<boolean>(digests.length);
    const missed: [number, string][] = [];
    digests.forEach((digest, i) => {
      const hex = b3Hex(digest);
      present[i] = this.packs.knows(hex) || ((loose === null || loose.has(hex)) && existsSync(this.layout.objectPath('blobs', digest)));
      if (!present[i]) missed.push([i, hex]);
    });
    if (missed.length > 0) {
      await this.packs.catchUpIndex();
      for (const [i, hex] of missed) present[i] = this.packs.knows(hex);
    }
    return present;
  }

  async batches(): Promise<BlobBatches> {
    return {
      maxPutBytes: 16 << 20,
      has: async (digests) => {
        digests.forEach(checkB3);
        await this.layout.init();
        await this.layout.gc.sync();
        return this.hasForBatch(digests, this.looseNames());
      },
      put: async (batch, opts) => {
        if (!opts?.verified) checkBatch(batch);
        await this.layout.init();
        await this.layout.gc.sync();
        // Small blobs go straight to the pack, which skips any it holds. One
        // that exists as a file of its own (stores from before packs) is
        // packed again: harmless, and the caller asked has() first.
        // No async function per blob (a promise and a suspended frame each, thousands per batch): the
        // packed ones share their group commit's promise.
        const files: Promise<unknown>[] = [];
        const packed: Promise<void>[] = [];
        for (const b of batch) {
          if (b.data.length > BATCH_PACK_MAX) files.push(putBytes(this, b.data));
          else packed.push(this.packs.append(Buffer.from(b.digest.buffer, b.digest.byteOffset, b.digest.byteLength), b.data));
        }
        const packing = Promise.all(packed).catch((err: unknown) => {
          throw storageError(`storing blob: ${(err as Error).message}`, err);
        });
        await Promise.all([...files, packing]);
      },
    };
  }

  async close(): Promise<void> {
    await this.packs.close();
  }
}
