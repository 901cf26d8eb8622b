// Makes sure blobs are in the store: Stat first (a blob the store has is
// never sent) unless the blob is so small that the store says a Put costs
// no more than the Stat, each digest handled once per run, uploads bounded, transient
// failures retried. Small files come with their bytes; large ones are read
// again from disk only when they must be sent. Stores that take batches
// (batch-queue.ts) get small blobs hundreds per call, each still asked
// about before it is sent.
import { open } from 'node:fs/promises';
import { ReadBuffers, readAhead } from '../castore/disk/read-ahead.js';
import type { BlobService } from '../castore/blob-service.js';
import { b3String } from '../castore/digest.js';
import { CastoreError } from '../castore/errors.js';
import { Limiter } from '../util/limiter.js';
import { withRetry, type RetryPolicy } from './retry.js';
import { BatchQueue, noUploads, type UploadStats } from './batch-queue.js';
import { SharedSlabs } from './shared-slabs.js';
import { DigestTable } from '../util/digest-table.js';
import { DELTA_MIN } from '../castore/delta/delta-store.js';
import { sendDelta } from './delta-upload.js';
import { LocalReads } from './local-read.js';


/** Buffers for files read again to be sent, reused as writers release them. */
const sendReads = new ReadBuffers(8);
/**
 * 4 MiB slabs for small files: the bytes an uploader may hold
 * (Uploads.maxHeldBytes, 24 MiB: the 4 batch Puts of ~3 MiB in flight, as
 * many queued behind them) and the ends of slabs left unfilled.
 */
const SLABS = 7;
/**
 * For a packing store (putSmall), which copies each small blob into its
 * pack at once: bytes wait only for their Stat or a pack's room, and 8 MiB
 * in 3 slabs keep the reading going (the 24 MiB in 7 were a sixth of a
 * copy → S3's peak RSS). Reading waits on them, and they on S3 alone.
 */
const PACKING_HELD = 8 << 20;
const PACKING_SLABS = 3;

const STORED = Promise.resolve();

/** A blob's bytes, or the file to read them from. */
export type BlobSource = { bytes: Uint8Array } | { file: string | Buffer };

export type { UploadStats } from './batch-queue.js';

/**
 * What ingesting needs from an uploader: each digest sent at most once per
 * run, and a bound on the bytes of queued blobs held in memory.
 */
export abstract class Uploads {
  readonly keepInMemoryBelow = 1 << 20;
  maxHeldBytes = 24 << 20;
  /**
   * Uploads under way at most before room() waits. Tiny files hold almost
   * no bytes, so the byte budget alone let tens of thousands wait for a
   * batch at once, each with its promises, closures and digest: garbage
   * that lived long enough to be promoted, and grew the old generation
   * that sets a copy's peak RSS. Two full batches (BatchQueue's 4,096);
   * a packing store's Puts in flight (BlobUploader).
   */
  maxUploading = 8192;
  abstract readonly stats: UploadStats;
  /**
   * Each digest is handled once per run: uploads under way by key, stored
   * digests in a table of 33 bytes each (a string key and a Map entry per
   * blob, tens of thousands kept all run, made up a tenth of the copy's heap).
   */
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly stored = new DigestTable();
  /** False where the caller deduplicates already (the upload thread: its parent keeps the run's digests). */
  protected dedup = true;
  /** Bytes of queued blobs held in memory, and who waits for them to drop. */
  private heldBytes = 0;
  /** Uploads started (send()) and not settled. */
  private uploading = 0;
  private readonly roomWaiters: (() => void)[] = [];
  /** Where small files are read to, reused (shared-slabs.ts); shared with an upload thread if there is one. */
  protected slabs = new SharedSlabs(SLABS);

  /** Shared slabs made, and how many are free (for tests). */
  get sharedMemory(): { made: number; free: number } {
    return this.slabs.counts;
  }

  /**
   * Memory to read a small file into before handing it to ensure() (or to
   * release() if it never is); reused memory once room(size) has resolved,
   * fresh otherwise.
   */
  memoryFor(size: number): Buffer {
    return this.slabs.region(size);
  }

  /** Gives back memory from memoryFor() that was not handed to ensure() (ensure() gives back what it takes). */
  release(bytes: Uint8Array): void {
    this.slabs.release(bytes);
    this.wakeRoom();
  }

  /**
   * Stores one blob not asked for before (in this run). `copied`, if the
   * store copies the bytes before the blob is durable: called once they
   * are needed no more (their memory is reused then).
   */
  protected abstract send(digest: Buffer, size: number, source: BlobSource, copied: () => void): Promise<void>;

  /**
   * Resolves once the blob `digest` is stored; `source` is its bytes or the
   * file holding them. The bytes are handed over: the caller must not use
   * them afterwards (an uploader on another thread may take their memory).
   */
  ensure(digest: Buffer, size: number, source: BlobSource): Promise<void> {
    if (this.dedup && this.stored.has(digest)) {
      if ('bytes' in source) this.release(source.bytes);
      return STORED;
    }
    const key = this.dedup ? digest.toString('latin1') : undefined;
    let p = key === undefined ? undefined : this.inFlight.get(key);
    if (p) {
      if ('bytes' in source) this.release(source.bytes); // the upload under way has bytes of its own
    } else {
      const held = 'bytes' in source ? source.bytes.length : 0;
      this.heldBytes += held;
      this.uploading++;
      let holding = true;
      // The bytes go back once the store copied them (a packing store) or the upload settled, whichever comes first.
      const copied = (): void => {
        if (!holding) return;
        holding = false;
        // The memory is free before anyone waiting for room hears of it.
        this.heldBytes -= held;
        if ('bytes' in source) this.release(source.bytes);
        else this.wakeRoom();
      };
      // One reaction per upload does the bookkeeping (a finally and a then, with their promises, before).
      const settle = (): void => {
        this.uploading--;
        if (holding) copied();
        else this.wakeRoom();
        // A failed upload may be tried again by a later path.
        if (key !== undefined) this.inFlight.delete(key);
      };
      p = this.send(digest, size, source, copied).then(
        () => {
          settle();
          // Once stored, the digest moves to the compact table.
          if (key !== undefined) this.stored.add(digest);
        },
        (err: unknown) => {
          settle();
          throw err;
        },
      );
      if (key !== undefined) this.inFlight.set(key, p);
    }
    return p;
  }

  /**
   * Resolves when queued in-memory blobs (and uploads) are under the budget and `size`
   * bytes (a file about to be read into memoryFor(size)) fit in the
   * slabs: memory stays flat however fast files are read, and is reused.
   */
  async room(size = 0): Promise<void> {
    while (!this.hasRoom(size)) await new Promise<void>((r) => this.roomWaiters.push(r));
  }

  /** Whether room(size) would resolve at once: callers skip its promise then (one per file otherwise). */
  hasRoom(size = 0): boolean {
    return this.heldBytes < this.maxHeldBytes && this.uploading < this.maxUploading && this.slabs.canServe(size);
  }

  private wakeRoom(): void {
    // Each waiter checks again for itself.
    for (const w of this.roomWaiters.splice(0)) w();
  }

  /** Releases what the uploader holds (threads, connections it opened). */
  async close(): Promise<void> {}
}

/** Uploads on this thread, over the given service. */
export class BlobUploader extends Uploads {
  readonly stats: UploadStats = noUploads();
  private readonly limiter: Limiter;
  /** Blobs read from their files: fewer at once, each streams megabytes. */
  private readonly fileLimiter = new Limiter(4);
  private readonly localReads: LocalReads;

  constructor(
    private readonly blobs: BlobService,
    concurrency: number,
    private readonly retry: RetryPolicy,
    private readonly log: (msg: string) => void = () => {},
    opts: { dedup?: boolean } = {},
  ) {
    super();
    // A packing store resolves a Put once its pack is durable: with few in flight, packs would hold few blobs.
    this.limiter = new Limiter(Math.max(concurrency, blobs.putsInFlight ?? 0));
    if (blobs.putSmall) {
      // Uploads beyond the Puts in flight only waited for the limiter, each with its
      // closures and promises: ~20 MiB of a copy → S3's heap at its peak RSS.
      this.maxUploading = Math.max(concurrency, blobs.putsInFlight ?? 0);
      this.maxHeldBytes = PACKING_HELD;
      this.slabs = new SharedSlabs(PACKING_SLABS);
    }
    this.dedup = opts.dedup ?? true;
    this.localReads = new LocalReads(blobs, log);
  }

  /** Set once the store said whether it takes batches. */
  private batching: Promise<BatchQueue | undefined> | undefined;

  /** The batch queue once it is known (no async step per blob then). */
  private queue: BatchQueue | undefined;

  protected send(digest: Buffer, size: number, source: BlobSource, copied: () => void): Promise<void> {
    if ('bytes' in source && this.queue?.fits(size)) return this.queue.add(digest, source.bytes);
    if ('bytes' in source && this.packsWhole(size)) return this.packSmall(digest, size, source.bytes, copied);
    if ('bytes' in source && this.blobs.batches) return this.sendBatched(digest, size, source.bytes);
    const limiter = 'bytes' in source ? this.limiter : this.fileLimiter;
    return limiter.run(() => this.upload(digest, size, source, copied));
  }

  private async sendBatched(digest: Buffer, size: number, bytes: Uint8Array): Promise<void> {
    const queue = await (this.batching ??= this.startBatching());
    this.queue = queue;
    if (queue?.fits(size)) return queue.add(digest, bytes);
    return this.limiter.run(() => this.upload(digest, size, { bytes }));
  }

  private async startBatching(): Promise<BatchQueue | undefined> {
    try {
      const batches = await withRetry('BlobBatchService probe', () => this.blobs.batches!(), this.retry, this.log);
      return batches && new BatchQueue(batches, this.stats, this.retry, this.log);
    } catch (err) {
      this.batching = undefined; // asked again for the next blob
      throw err;
    }
  }

  private async upload(digest: Buffer, size: number, source: BlobSource, copied?: () => void): Promise<void> {
    const what = `blob ${b3String(digest)}`;
    const statFirst = !('bytes' in source) || size > (this.blobs.putWithoutStatUpTo ?? -1);
    if (statFirst && (await withRetry(`Stat ${what}`, () => this.blobs.stat(digest), this.retry, this.log))) {
      this.stats.blobsSkipped++;
      return;
    }
    if ('bytes' in source && this.packs(size)) return this.packSmall(digest, size, source.bytes, copied);
    if (!('bytes' in source) && (await this.localReads.stored(digest, size, source.file))) {
      this.stats.blobsSent++;
      this.stats.blobsReadByStore++;
      this.stats.bytesReadByStore += size;
      return;
    }
    if (!('bytes' in source) && size >= DELTA_MIN && this.blobs.deltas && (await this.sentAsDelta(digest, size, source.file))) return;
    // Only a packing store's writer says when it has copied the bytes; after that they may hold another file.
    let handedOver = false;
    const released = copied && this.blobs.putsInFlight !== undefined && 'bytes' in source ? () => ((handedOver = true), copied()) : undefined;
    const got = await withRetry(`Put ${what}`, () => this.put(source, released), this.retry, this.log, () => !handedOver);
    this.checkSent(what, digest, size, got);
  }

  /**
   * Whether the file went as a delta against a similar blob the store has.
   * Any failure of the delta (a base collected meanwhile, a store that
   * refuses it) leaves the whole Put to be made, which reports a changed
   * file as usual.
   */
  private async sentAsDelta(digest: Buffer, size: number, file: string | Buffer): Promise<boolean> {
    try {
      const deltas = await this.blobs.deltas!();
      const sent = deltas && (await sendDelta(deltas, digest, size, file));
      if (!sent) return false;
      this.stats.blobsSent++;
      this.stats.bytesSent += sent.sent;
      this.stats.blobsAsDeltas++;
      this.stats.bytesReused += sent.reused;
      return true;
    } catch (err) {
      this.log(`blob ${b3String(digest)}: not sent as a delta (${(err as Error).message}); sending it whole`);
      return false;
    }
  }

  /** Whether a small blob goes whole into the store's pack (putSmall). */
  private packs(size: number): boolean {
    return this.blobs.putSmall !== undefined && size <= (this.blobs.putSmallUpTo ?? -1);
  }

  /** Whether it goes there without a Stat either (the packer asks the index per pack): send() skips upload() then. */
  private packsWhole(size: number): boolean {
    return this.packs(size) && size <= (this.blobs.putWithoutStatUpTo ?? -1);
  }

  /**
   * A blob into its pack, without upload()'s per-blob cost when send()
   * calls it: the limiter (maxUploading bounds these, and the packer their
   * memory), async frames and a name made for errors that seldom come. Not
   * retried: it fails only once its bytes were handed over (their memory
   * may hold another file by then).
   */
  private packSmall(digest: Buffer, size: number, bytes: Uint8Array, copied?: () => void): Promise<void> {
    return this.blobs.putSmall!(bytes, copied).then((got) => this.checkSent(undefined, digest, size, got));
  }

  private checkSent(what: string | undefined, digest: Buffer, size: number, got: Buffer): void {
    if (!got.equals(digest)) {
      throw new CastoreError('internal', `${what ?? `blob ${b3String(digest)}`}: the store answered ${b3String(got)} (file changed while copying?)`);
    }
    this.stats.blobsSent++;
    this.stats.bytesSent += size;
  }

  private async put(source: BlobSource, released?: () => void): Promise<Buffer> {
    const w = this.blobs.put();
    try {
      if ('bytes' in source) {
        if (source.bytes.length > 0) await w.write(source.bytes, released);
      } else {
        const h = await open(source.file, 'r');
        try {
          // A writer that says when it is done with a chunk gets it read into again.
          for await (const chunk of readAhead(h, undefined, sendReads, true)) await w.write(chunk, () => sendReads.give(chunk));
        } finally {
          await h.close();
        }
      }
      return await w.close();
    } catch (err) {
      await w.abort().catch(() => {});
      throw err;
    }
  }
}
