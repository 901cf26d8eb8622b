// Blob uploads on a worker thread. Against a daemon every small file is a
// gRPC call, and their HTTP/2 work (~100 µs each, tens of thousands per
// copy) competed for the one thread that also reads and hashes; on a
// thread of its own it runs beside them. This side keeps the run's dedup
// and memory bound (Uploads) and hands blobs over in batches.
import { Worker } from 'node:worker_threads';
import { CastoreError, type ErrorKind } from '../castore/errors.js';
import { Uploads, type BlobSource, type UploadStats } from './blob-uploader.js';
import type { RetryPolicy } from './retry.js';

export interface UploadWorkerData {
  addr: string;
  concurrency: number;
  retry: RetryPolicy;
}

/** A blob to store: its bytes, or the file to read them from. */
export interface UploadRequest {
  id: number;
  digest: Uint8Array;
  size: number;
  bytes?: Uint8Array;
  file?: string | Uint8Array;
}

export type UploadReply =
  | { type: 'done'; results: { id: number; error?: { message: string; kind?: ErrorKind } }[]; stats: UploadStats }
  | { type: 'log'; msg: string };

/** Requests sent in one message at most; more wait for the next. */
const BATCH_ITEMS = 512;

export class WorkerUploads extends Uploads {
  readonly stats: UploadStats = { blobsSent: 0, blobsSkipped: 0, bytesSent: 0 };
  private worker: Worker | undefined;
  private readonly pending = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private outbox: UploadRequest[] = [];
  private transfers: ArrayBuffer[] = [];
  private nextId = 1;
  /** Set once the worker is gone: later uploads fail at once with it. */
  private gone: Error | undefined;

  constructor(
    private readonly data: UploadWorkerData,
    private readonly log: (msg: string) => void = () => {},
  ) {
    super();
  }

  protected send(digest: Buffer, size: number, source: BlobSource): Promise<void> {
    if (this.gone) return Promise.reject(this.gone);
    const id = this.nextId++;
    // Cloning a view clones its whole ArrayBuffer: a small Buffer is a view
    // of an 8 KiB pool. Bytes that own their memory are handed over (moved,
    // not copied: ensure() takes them); others, and digests, are copied.
    const req: UploadRequest = { id, digest: new Uint8Array(digest), size };
    if ('bytes' in source) {
      const b = source.bytes;
      const owned = b.byteOffset === 0 && b.buffer instanceof ArrayBuffer && b.byteLength === b.buffer.byteLength;
      const moved = owned ? b : copyOf(b);
      req.bytes = moved;
      this.transfers.push(moved.buffer as ArrayBuffer);
    } else req.file = typeof source.file === 'string' ? source.file : new Uint8Array(source.file);
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
    const batch = this.outbox;
    const transfers = this.transfers;
    this.outbox = [];
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

/** A copy in memory of its own (not a view of Node's shared pool). */
function copyOf(b: Uint8Array): Uint8Array {
  const c = Buffer.allocUnsafeSlow(b.length);
  c.set(b);
  return c;
}
