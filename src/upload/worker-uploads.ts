// Blob uploads on a worker thread. Against a daemon every small file is a
// gRPC call, and their HTTP/2 work (~100 µs each, tens of thousands per
// copy) competed for the one thread that also reads and hashes; on a
// thread of its own it runs beside them. This side keeps the run's dedup
// and memory bound (Uploads) and hands blobs over in batches.
import { Worker } from 'node:worker_threads';
import { CastoreError, type ErrorKind } from '../castore/errors.js';
import { B3_LEN } from '../castore/digest.js';
import { Uploads, type BlobSource, type UploadStats } from './blob-uploader.js';
import { noUploads } from './batch-queue.js';
import type { RetryPolicy } from './retry.js';

export interface UploadWorkerData {
  addr: string;
  concurrency: number;
  retry: RetryPolicy;
}

/**
 * A blob to store: its bytes, or the file to read them from. Digests, and
 * bytes that are views of Node's shared pool, travel in one array per
 * batch (UploadBatch): an ArrayBuffer each, on both threads, cost more
 * than the copy.
 */
export interface UploadRequest {
  id: number;
  size: number;
  /** Bytes that own their memory, moved to the worker. */
  bytes?: Uint8Array;
  /** Where the bytes are in the batch's `small` array (or `shared` slab), and how many. */
  smallAt?: number;
  smallLength?: number;
  /** Which of the batch's `shared` slabs holds the bytes, if one does. */
  slab?: number;
  file?: string | Uint8Array;
}

/** What one message to the upload thread holds: request i's digest is digests[32i, 32i+32). */
export interface UploadBatch {
  requests: UploadRequest[];
  digests: Uint8Array;
  small: Uint8Array;
  shared: SharedArrayBuffer[];
}

export type UploadReply =
  | { type: 'done'; results: { id: number; error?: { message: string; kind?: ErrorKind } }[]; stats: UploadStats }
  | { type: 'log'; msg: string };

/** The upload thread's young generation: V8 makes it three semi-spaces, so 4 MiB each. */
export const UPLOAD_THREAD_YOUNG_MB = 12;

/** Requests sent in one message at most; more wait for the next. */
const BATCH_ITEMS = 512;

export class WorkerUploads extends Uploads {
  readonly stats: UploadStats = noUploads();
  private worker: Worker | undefined;
  private readonly pending = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private outbox: UploadRequest[] = [];
  private outboxDigests: Buffer[] = [];
  private outboxSmall: Uint8Array[] = [];
  private smallBytes = 0;
  private transfers: ArrayBuffer[] = [];
  private outboxShared: SharedArrayBuffer[] = [];
  private nextId = 1;
  /** Set once the worker is gone: later uploads fail at once with it. */
  private gone: Error | undefined;

  constructor(
    private readonly data: UploadWorkerData,
    private readonly log: (msg: string) => void = () => {},
  ) {
    super();
  }

  /**
   * Starts the thread now instead of with the first blob: its start (a new
   * isolate loading its modules, 0.2-0.3 s on a busy machine) then runs
   * beside the walk's first files, and the daemon gets blobs that much
   * sooner. Unref'd until blobs are pending, like an idle thread.
   */
  start(): void {
    if (!this.gone && !this.worker) this.started().unref();
  }

  protected send(digest: Buffer, size: number, source: BlobSource): Promise<void> {
    if (this.gone) return Promise.reject(this.gone);
    const id = this.nextId++;
    const req: UploadRequest = { id, size };
    if ('bytes' in source && this.slabs.owns(source.bytes)) {
      // In shared memory: the upload thread reads it where it is.
      const b = source.bytes;
      const sab = b.buffer as SharedArrayBuffer;
      let i = this.outboxShared.indexOf(sab);
      if (i < 0) i = this.outboxShared.push(sab) - 1;
      req.slab = i;
      req.smallAt = b.byteOffset;
      req.smallLength = b.length;
    } else if ('bytes' in source) {
      const b = source.bytes;
      // Cloning a view clones its whole ArrayBuffer (a small Buffer is a
      // view of an 8 KiB pool): bytes that own their memory are moved (not
      // copied: ensure() takes them), the others go in the batch's array.
      const owned = b.byteOffset === 0 && b.buffer instanceof ArrayBuffer && b.byteLength === b.buffer.byteLength;
      if (owned) {
        req.bytes = b;
        this.transfers.push(b.buffer as ArrayBuffer);
      } else {
        req.smallAt = this.smallBytes;
        req.smallLength = b.length;
        this.outboxSmall.push(b);
        this.smallBytes += b.length;
      }
    } else req.file = typeof source.file === 'string' ? source.file : new Uint8Array(source.file);
    this.outboxDigests.push(digest);
    const done = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    if (this.outbox.push(req) === 1) setImmediate(() => this.flush());
    else if (this.outbox.length >= BATCH_ITEMS) this.flush();
    return done;
  }

  override async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.gone ??= new Error('the uploader was closed');
    if (w) await w.terminate();
  }

  private flush(): void {
    if (this.outbox.length === 0) return;
    // Closed meanwhile: what waits to be sent fails, and no new thread is started to keep the process alive.
    if (this.gone) {
      this.outbox = [];
      this.outboxDigests = [];
      this.outboxSmall = [];
      this.outboxShared = [];
      this.smallBytes = 0;
      this.transfers = [];
      return this.failAll(this.gone);
    }
    const digests = new Uint8Array(this.outboxDigests.length * B3_LEN);
    this.outboxDigests.forEach((d, i) => digests.set(d, i * B3_LEN));
    const small = new Uint8Array(this.smallBytes);
    let at = 0;
    for (const b of this.outboxSmall) {
      small.set(b, at);
      at += b.length;
    }
    const batch: UploadBatch = { requests: this.outbox, digests, small, shared: this.outboxShared };
    const transfers = [...this.transfers, digests.buffer, small.buffer];
    this.outbox = [];
    this.outboxDigests = [];
    this.outboxSmall = [];
    this.outboxShared = [];
    this.smallBytes = 0;
    this.transfers = [];
    try {
      const w = this.started();
      w.ref(); // unref'd again once nothing is pending: a forgotten close() must not keep the process alive
      w.postMessage(batch, transfers);
    } catch (err) {
      this.failAll(err as Error);
    }
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./upload-worker.js', import.meta.url), {
      workerData: this.data,
      // The thread needs none of the process's flags (some, like --input-type, would even stop it).
      execArgv: [],
      // V8's default young generation (two 16 MiB semi-spaces) is a sixth of a copy's peak RSS;
      // what this thread allocates dies within a batch, so 4 MiB semi-spaces collect it as well.
      resourceLimits: { maxYoungGenerationSizeMb: UPLOAD_THREAD_YOUNG_MB },
    });
    w.on('message', (m: UploadReply) => this.onReply(m));
    w.on('error', (err) => this.failAll(new Error(`the upload thread failed: ${err.message}`)));
    w.on('exit', (code) => this.failAll(new Error(`the upload thread exited (code ${code})`)));
    this.worker = w;
    return w;
  }

  private onReply(m: UploadReply): void {
    if (m.type === 'log') return this.log(m.msg);
    Object.assign(this.stats, m.stats);
    for (const r of m.results) {
      const p = this.pending.get(r.id);
      if (!p) continue;
      this.pending.delete(r.id);
      if (!r.error) p.resolve();
      else p.reject(r.error.kind ? new CastoreError(r.error.kind, r.error.message) : new Error(r.error.message));
    }
    if (this.pending.size === 0) this.worker?.unref();
  }

  private failAll(err: Error): void {
    this.gone ??= err;
    this.worker = undefined;
    for (const p of this.pending.values()) p.reject(this.gone);
    this.pending.clear();
  }
}

