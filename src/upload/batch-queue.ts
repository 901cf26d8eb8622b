// Small blobs for a store with batches (BlobBatchService): gathered into
// batches of up to maxPutBytes, each asked about in one Has and the missing
// ones sent in one Put — a few hundred calls for tens of thousands of files.
// Batches fill while the calls in flight run: the busier the store, the
// larger each batch.
import { BATCH_OVERHEAD, type BlobBatches } from '../castore/blob-service.js';
import { withRetry, type RetryPolicy } from './retry.js';

/** Batches in flight at once: enough to keep both ends busy. */
const IN_FLIGHT = 4;
/** Blobs per batch at most (empty files cost no bytes but a digest each). */
const MAX_ITEMS = 4096;

interface Item {
  digest: Buffer;
  data: Uint8Array;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** What a copy's blob uploads did, counted where the calls are made. */
export interface UploadStats {
  blobsSent: number;
  blobsSkipped: number;
  bytesSent: number;
  /** Blobs sent as deltas against a similar blob (delta-upload.ts), and the bytes they took from it (not in bytesSent). */
  blobsAsDeltas: number;
  bytesReused: number;
  /** Blobs the store read from the file itself (a daemon on this machine: BlobFromPathService), and their bytes (not in bytesSent). */
  blobsReadByStore: number;
  bytesReadByStore: number;
}

export const noUploads = (): UploadStats => ({ blobsSent: 0, blobsSkipped: 0, bytesSent: 0, blobsAsDeltas: 0, bytesReused: 0, blobsReadByStore: 0, bytesReadByStore: 0 });

export class BatchQueue {
  private queue: Item[] = [];
  private head = 0;
  private queuedBytes = 0;
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly batches: BlobBatches,
    private readonly stats: UploadStats,
    private readonly retry: RetryPolicy,
    private readonly log: (msg: string) => void,
  ) {}

  /** Whether a blob of `size` bytes fits in a batch at all. */
  fits(size: number): boolean {
    return size + BATCH_OVERHEAD <= this.batches.maxPutBytes;
  }

  /** Resolves once the blob is in the store (sent, or found there). */
  add(digest: Buffer, data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ digest, data, resolve, reject });
      this.queuedBytes += data.length + BATCH_OVERHEAD;
      this.pump();
    });
  }

  private pending(): number {
    return this.queue.length - this.head;
  }

  private pump(): void {
    while (this.inFlight < IN_FLIGHT && (this.queuedBytes >= this.batches.maxPutBytes || this.pending() >= MAX_ITEMS)) this.start();
    // A partial batch waits for the rest of this turn's blobs, then goes if a slot is free.
    if (this.pending() > 0 && this.inFlight < IN_FLIGHT && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        if (this.pending() > 0 && this.inFlight < IN_FLIGHT) this.start();
        if (this.pending() > 0) this.pump();
      });
    }
  }

  private start(): void {
    const batch: Item[] = [];
    let bytes = 0;
    while (this.head < this.queue.length && batch.length < MAX_ITEMS) {
      const item = this.queue[this.head];
      const size = item.data.length + BATCH_OVERHEAD;
      if (batch.length > 0 && bytes + size > this.batches.maxPutBytes) break;
      batch.push(item);
      bytes += size;
      this.queue[this.head++] = undefined as never;
    }
    this.queuedBytes -= bytes;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
    this.inFlight++;
    this.run(batch).finally(() => {
      this.inFlight--;
      this.pump();
    });
  }

  private async run(batch: Item[]): Promise<void> {
    try {
      const present = await withRetry(`Has (${batch.length} blobs)`, () => this.batches.has(batch.map((b) => b.digest)), this.retry, this.log);
      const missing = batch.filter((_, i) => !present[i]);
      if (missing.length > 0) {
        const blobs = missing.map((b) => ({ digest: b.digest, data: b.data }));
        // The digests were computed from these bytes (ingest.ts).
        await withRetry(`Put (${missing.length} blobs)`, () => this.batches.put(blobs, { verified: true }), this.retry, this.log);
      }
      this.stats.blobsSkipped += batch.length - missing.length;
      this.stats.blobsSent += missing.length;
      for (const b of missing) this.stats.bytesSent += b.data.length;
      for (const b of batch) b.resolve();
    } catch (err) {
      for (const b of batch) b.reject(err);
    }
  }
}
