// The reads NAR rendering starts ahead of the writer: a group of small
// files read together (one request per pack where the service can), or
// one piece of a large file. Each is budgeted by the bytes it may bring.
import { readWhole, WHOLE_READS_AT_ONCE, type BlobService } from '../castore/blob-service.js';
import { b3String } from '../castore/digest.js';
import { storageError } from '../castore/errors.js';
import { Limiter } from '../util/limiter.js';

/** A file the writer will want, in NAR order. */
export interface FileItem {
  digest: Uint8Array;
  /** Bytes it may bring: the index's size where known, else its entry's (reads stop beyond it). */
  bytes: number;
  /** Fails the NAR at this file (found while planning). */
  error?: Error;
  /** Known empty from the index: nothing to read. */
  empty?: boolean;
  /** Read with its neighbours: that group and its place in it. */
  group?: { job: Job; index: number };
  /** Found again later in the tree: its bytes are kept (under this key) when the writer takes them. */
  keep?: string;
  /** Written from the copy an earlier place keeps under this key: not read. */
  copyOf?: string;
  /** The writer has its bytes (a later place can no longer be written from a copy of them). */
  taken?: boolean;
  /** Read in pieces: the pieces started so far, and the bytes covered by them. */
  parts?: { jobs: Job[]; planned: number };
  // none of these: streamed by the writer when it gets there
}

export interface Job {
  bytes: number;
  /** A group takes members until closed; a piece is closed at once. */
  closed: boolean;
  files?: FileItem[];
  range?: { digest: Uint8Array; offset: number; length: number };
  /** Set when started: one list of chunks or error per member (a piece: one). */
  result?: Promise<(Uint8Array[] | Error)[]>;
  /** The result once it has arrived (taken without awaiting). */
  value?: (Uint8Array[] | Error)[];
}

export const notFound = (digest: Uint8Array): Error => storageError(`blob ${b3String(digest)} not found`);

export async function runJob(job: Job, blobs: BlobService, signal: AbortSignal): Promise<(Uint8Array[] | Error)[]> {
  if (job.range) {
    const { digest, offset, length } = job.range;
    const b = await blobs.readRange!(digest, offset, length, { signal });
    if (!b) return [notFound(digest)];
    const got = b.reduce((n, c) => n + c.length, 0);
    if (got !== length) throw storageError(`blob ${b3String(digest)}: read ${got} of the ${length} bytes at ${offset}`);
    return [b];
  }
  const files = job.files!;
  if (blobs.readMany) {
    const got = await blobs.readMany(files.map((f) => f.digest), files.map((f) => f.bytes), { signal });
    return got.map((b, i) => b ?? notFound(files[i].digest));
  }
  const limit = new Limiter(WHOLE_READS_AT_ONCE);
  return Promise.all(
    files.map((f) =>
      limit.run(() =>
        readWhole(blobs, f.digest, f.bytes, signal).then(
          (b) => b ?? notFound(f.digest),
          (err: Error) => err,
        ),
      ),
    ),
  );
}

/** A queue that does not move its elements on every take. */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(x: T): void {
    this.items.push(x);
  }
  peek(): T | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined;
  }
  shift(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const x = this.items[this.head];
    this.items[this.head++] = undefined as never;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }
}

/** Wakes everyone waiting; waiters check their condition again. */
export class Wake {
  private waiters: (() => void)[] = [];
  wait(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }
  wake(): void {
    const w = this.waiters;
    if (w.length === 0) return;
    this.waiters = [];
    for (const f of w) f();
  }
}
