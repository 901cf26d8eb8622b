// Reading ahead of the NAR writer. A scout walks the tree in NAR order
// (depth first, entries sorted) ahead of the writer and plans every file's
// read; reads are started in that order, several at once, while the bytes
// they may bring (real sizes where the blob index tells them, else the
// stated ones, which reads never exceed) stay within a budget. The writer
// takes directories and files from the scout in the same order. Over S3 a
// read costs milliseconds, so one at a time left the NAR waiting on each.
import { setMaxListeners } from 'node:events';
import type { BlobService, ReadAheadHint } from '../castore/blob-service.js';
import type { DirectoryService } from '../castore/directory-service.js';
import type { FileNode, Node } from '../castore/messages.js';
import { b3Hex, b3String, sameBytes } from '../castore/digest.js';
import { CastoreError, storageError } from '../castore/errors.js';
import { DirPrefetch } from './dir-prefetch.js';
import { Fifo, Wake, notFound, runJob, type FileItem, type Job } from './read-jobs.js';
import type { Holding } from '../util/byte-budget.js';
import type { ChunkPool } from '../nix/nar.js';

/**
 * A share of the daemon's byte budget for one rendering: what its reads
 * ahead hold beyond `free` bytes (already held by whoever asked for the
 * NAR) is held in `holding`. When the budget refuses, reads wait for the
 * writer to take what was read; one read always proceeds, so every
 * rendering progresses.
 */
export interface ReadAheadBudget {
  holding: Holding;
  free: number;
}

export interface Castore {
  blobs: BlobService;
  directories: DirectoryService;
}

/** What the read-ahead holds and does, for tests and benchmarks. */
export class ReadAheadStats {
  /** Bytes of started reads not yet written (in flight or waiting). */
  held = 0;
  peakHeld = 0;
  inFlight = 0;
  peakInFlight = 0;
  started = 0;
  /** Files written from the copy of an earlier place's bytes, not read again. */
  reused = 0;
}

/** Services without a hint: a few reads ahead (a disk answers quickly). */
const DEFAULT_HINT: ReadAheadHint = { reads: 4, bytes: 8 << 20, sizesFromIndex: false, rangeBytes: 8 << 20 };
/** Files up to this size are read whole, with their neighbours. */
const SMALL_FILE = 1 << 20;
const GROUP_BYTES = 8 << 20;
const GROUP_FILES = 1024;
/** Directories and files the scout may have planned that the writer has not reached. */
const MAX_AHEAD = 8192;
const RESUME_AT = 1024;
const NONE: readonly Uint8Array[] = Object.freeze([]);
/**
 * A small file found again at a later place of the tree (the bench's
 * /usr/share: ~270 GETs re-fetched bytes an earlier group had read) is
 * not read again: the earlier one's bytes are copied when the writer takes
 * them and kept until the last later place is written. Up to COPY_MAX per
 * file and COPIES_BYTES in all (else read again, as before), remembered
 * for the last SEEN_MAX small files planned.
 */
const COPY_MAX = 64 << 10;
const COPIES_BYTES = 4 << 20;
const SEEN_MAX = 65_536;

export class NarReadAhead {
  readonly stats: ReadAheadStats;
  private readonly hint: ReadAheadHint;
  private readonly ctl = new AbortController();
  private readonly dirs: DirPrefetch;
  private readonly dirQueue = new Fifo<{ digest: Uint8Array; entries: Node[] }>();
  private readonly fileQueue = new Fifo<FileItem>();
  /** Not started yet, in order: groups, and large files still to cut into pieces. */
  private readonly pending = new Fifo<Job | FileItem>();
  /** The group still taking members. */
  private open: Job | undefined;
  private readonly running = new Set<Promise<void>>();
  /** Small files planned, by digest (hex), for finding them again at later places. */
  private readonly seen = new Map<string, FileItem>();
  /** Bytes of files found again (once the writer has had the first place), and how many places still want them. */
  private readonly copies = new Map<string, { bytes?: Uint8Array; size: number; left: number }>();
  private copiesBytes = 0;
  /** Bytes of files given to the writer by contents(), released when it comes back for more. */
  private taken = 0;
  private ahead = 0;
  private scoutDone = false;
  private scoutError: { err: unknown } | undefined;
  private readonly scoutRun: Promise<void>;
  private readonly wakeWriter = new Wake();
  private readonly wakeScout = new Wake();
  private readonly onAbort = () => this.stop(this.outer!.reason);

  constructor(
    root: Node,
    private readonly store: Castore,
    private readonly outer?: AbortSignal,
    stats?: ReadAheadStats,
    private readonly budget?: ReadAheadBudget,
    /** Where the consumer gives chunks back once written: a large file is then read into the store's lent buffers (readLent). */
    private readonly pool?: ChunkPool,
  ) {
    this.stats = stats ?? new ReadAheadStats();
    // A symlink's NAR needs no service at all: callers may pass none.
    this.hint = (store.blobs as BlobService | undefined)?.readAhead ?? DEFAULT_HINT;
    // Every read in flight listens to it (the S3 SDK and our body watcher).
    setMaxListeners(16 * this.hint.reads + 16, this.ctl.signal);
    this.dirs = new DirPrefetch(store.directories, store.blobs, this.hint.sizesFromIndex);
    if (outer?.aborted) this.ctl.abort(outer.reason);
    else outer?.addEventListener('abort', this.onAbort, { once: true });
    this.scoutRun = this.scout(root).then(
      () => {
        this.scoutDone = true;
        this.closeOpen();
        this.wakeWriter.wake();
      },
      (err) => {
        this.scoutError = { err };
        this.wakeWriter.wake();
      },
    );
  }

  /** The next directory's entries in NAR order; `digest` is the one the writer expects. */
  async directory(digest: Uint8Array): Promise<Node[]> {
    this.releaseTaken();
    for (;;) {
      this.checkOuter();
      const d = this.dirQueue.shift();
      if (d) {
        this.outOfStep(d.digest, digest);
        this.consumed();
        return d.entries;
      }
      this.stalled();
      await this.wakeWriter.wait();
    }
  }

  /**
   * The bytes of the next file (`node`, as the writer sees it): the chunks
   * themselves once its group's read has finished (most small files: no
   * generator, no promise per file), else as they come.
   */
  contents(node: FileNode): readonly Uint8Array[] | AsyncIterable<Uint8Array> {
    this.releaseTaken();
    const item = this.fileQueue.peek();
    if (item === undefined || item.error || this.outer?.aborted) return this.file(node);
    let chunks: readonly Uint8Array[] | undefined;
    if (item.empty) chunks = NONE;
    else if (item.copyOf !== undefined) chunks = [this.takeCopy(item.copyOf)];
    else if (item.group?.job.value) {
      const b = item.group.job.value[item.group.index];
      if (!(b instanceof Error)) chunks = b;
    }
    if (chunks === undefined) return this.file(node);
    this.outOfStep(item.digest, node.digest);
    this.fileQueue.shift();
    item.taken = true;
    if (item.keep !== undefined) this.keepCopy(item.keep, chunks);
    // The writer holds them until it asks for its next entry.
    if (item.group) this.taken += item.bytes;
    item.group = undefined; // `seen` may still hold the item: not the group's bytes
    this.consumed();
    return chunks;
  }

  /** The bytes of the next file (`node`, as the writer sees it). */
  async *file(node: FileNode): AsyncGenerator<Uint8Array> {
    this.releaseTaken();
    const item = await this.nextFile(node.digest);
    /** Budgeted bytes the writer has taken and not given back yet. */
    let holding = 0;
    try {
      if (item.error) throw item.error;
      if (item.empty) return;
      if (item.copyOf !== undefined) {
        yield this.takeCopy(item.copyOf);
      } else if (item.group) {
        const b = (await this.resultOf(item.group.job))[item.group.index];
        holding = item.bytes;
        if (b instanceof Error) throw b;
        item.taken = true; // its bytes: too late to keep them for a later place after this
        item.group = undefined; // `seen` may still hold the item: not the group's bytes
        if (item.keep !== undefined) this.keepCopy(item.keep, b);
        yield* b;
      } else if (item.parts) {
        for (let k = 0, done = 0; done < item.bytes; k++) {
          const job = await this.part(item, k);
          const [b] = await this.resultOf(job);
          item.parts.jobs[k] = undefined as never; // the writer has it now
          holding += job.bytes;
          if (b instanceof Error) throw b;
          yield* b;
          this.release(job.bytes);
          holding -= job.bytes;
          done += job.bytes;
        }
      } else if (this.pool && this.store.blobs.readLent) {
        // A fresh MiB per chunk cost a page fault per 4 KiB and, as external memory, V8's full collections (~25 per GiB served).
        const lent = await this.store.blobs.readLent(item.digest);
        if (!lent) throw notFound(item.digest);
        for await (const chunk of lent.chunks) {
          this.pool.adopt(chunk, lent.giveBack);
          yield chunk;
        }
      } else {
        const s = await this.store.blobs.read(item.digest, { signal: this.ctl.signal });
        if (!s) throw notFound(item.digest);
        yield* s;
      }
    } catch (err) {
      this.checkOuter();
      throw err;
    } finally {
      if (holding > 0) this.release(holding);
      this.consumed();
    }
  }

  /** Stops every read and waits until none is running. */
  async close(): Promise<void> {
    this.releaseTaken();
    this.outer?.removeEventListener('abort', this.onAbort);
    this.stop(new Error('NAR rendering ended'));
    await this.scoutRun;
    await Promise.all([...this.running]);
    this.budget?.holding.release();
  }

  private stop(reason: unknown): void {
    if (!this.ctl.signal.aborted) this.ctl.abort(reason);
    this.dirs.stop();
    this.wakeWriter.wake();
    this.wakeScout.wake();
  }

  private checkOuter(): void {
    this.outer?.throwIfAborted();
  }

  private outOfStep(got: Uint8Array, want: Uint8Array): void {
    if (!sameBytes(got, want)) {
      throw new CastoreError('internal', `NAR read-ahead out of step: planned ${b3String(got)}, the writer is at ${b3String(want)}`);
    }
  }

  /** The writer waits for the scout: fail if the scout cannot deliver. */
  private stalled(): void {
    this.ctl.signal.throwIfAborted();
    if (this.scoutError) throw this.scoutError.err;
    if (this.scoutDone) throw new CastoreError('internal', 'NAR read-ahead ran out of entries before the writer');
  }

  private consumed(): void {
    this.ahead--;
    this.wakeScout.wake();
  }

  private async nextFile(digest: Uint8Array): Promise<FileItem> {
    for (;;) {
      this.checkOuter();
      const item = this.fileQueue.shift();
      if (item) {
        this.outOfStep(item.digest, digest);
        return item;
      }
      this.stalled();
      await this.wakeWriter.wait();
    }
  }

  // ---- the scout

  private async scout(root: Node): Promise<void> {
    if (root.type === 'file') {
      const sized = this.hint.sizesFromIndex && this.store.blobs.sizeOf ? { real: await this.store.blobs.sizeOf(root.digest) } : undefined;
      await this.room();
      this.plan(root, sized);
      return;
    }
    if (root.type !== 'directory') return;
    const stack: { entries: Node[]; sizes?: (number | undefined)[]; i: number; place: number[] }[] = [];
    const enter = async (digest: Uint8Array, place: number[]) => {
      const d = await this.dirs.take(digest, place);
      if (this.ahead >= MAX_AHEAD) await this.room();
      else this.ctl.signal.throwIfAborted();
      this.dirQueue.push({ digest, entries: d.entries });
      this.ahead++;
      this.wakeWriter.wake();
      stack.push({ entries: d.entries, sizes: d.sizes, i: 0, place });
    };
    await enter(root.digest, []);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (top.i === top.entries.length) {
        stack.pop();
        continue;
      }
      const i = top.i++;
      const e = top.entries[i];
      if (e.type === 'directory') {
        await enter(e.digest, [...top.place, i]);
      } else if (e.type === 'file') {
        // An await per file cost a promise and a turn each: only when the scout must wait.
        if (this.ahead >= MAX_AHEAD) await this.room();
        else this.ctl.signal.throwIfAborted();
        if (!this.plan(e, top.sizes && { real: top.sizes[i] })) return;
      }
    }
  }

  /**
   * Waits while the scout is far enough ahead of the writer, then until the
   * writer has taken RESUME_AT entries (a group fills while it waits).
   */
  private async room(): Promise<void> {
    if (this.ahead >= MAX_AHEAD) {
      while (this.ahead > MAX_AHEAD - RESUME_AT && !this.ctl.signal.aborted) {
        // Nothing being read: the group still filling is better read now.
        if (this.stats.inFlight === 0) this.closeOpen();
        await this.wakeScout.wait();
      }
    }
    this.ctl.signal.throwIfAborted();
  }

  /** Plans one file's read; false once a file fails (nothing after it is read). */
  private plan(f: FileNode, sized?: { real: number | undefined }): boolean {
    const item: FileItem = { digest: f.digest, bytes: f.size };
    if (sized && sized.real === undefined) item.error = notFound(f.digest);
    else if (sized && sized.real !== f.size) {
      item.error = storageError(`blob ${b3String(f.digest)} is ${sized.real} bytes, its directory entry states ${f.size}`);
    } else if (sized && f.size === 0) item.empty = true;
    else if (f.size <= SMALL_FILE) {
      if (!this.foundAgain(item)) this.join(item);
    }
    else if (this.store.blobs.readRange) {
      this.closeOpen();
      item.parts = { jobs: [], planned: 0 };
      this.pending.push(item);
    }
    this.fileQueue.push(item);
    this.ahead++;
    this.wakeWriter.wake();
    this.pump();
    return !item.error;
  }

  /** True if `item` will be written from an earlier place's copy (no read); else remembers it. */
  private foundAgain(item: FileItem): boolean {
    if (item.bytes === 0 || item.bytes > COPY_MAX) return false;
    const key = b3Hex(item.digest);
    const c = this.copies.get(key);
    if (c && c.size === item.bytes) {
      // Kept (or to be kept) until its last place: one more.
      c.left++;
      item.copyOf = key;
      return true;
    }
    const first = this.seen.get(key);
    if (c || first === undefined || first.taken || first.keep !== undefined || first.bytes !== item.bytes || this.copiesBytes + item.bytes > COPIES_BYTES) {
      this.seen.delete(key);
      this.seen.set(key, item);
      if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.keys().next().value!);
      return false;
    }
    this.seen.delete(key);
    this.copies.set(key, { size: item.bytes, left: 1 });
    this.copiesBytes += item.bytes;
    first.keep = key;
    item.copyOf = key;
    return true;
  }

  /** The first place's bytes, copied as the writer takes them (they are small). */
  private keepCopy(key: string, chunks: readonly Uint8Array[]): void {
    const c = this.copies.get(key);
    if (c) c.bytes = Buffer.concat(chunks);
  }

  /** A later place's bytes; dropped after the last one. */
  private takeCopy(key: string): Uint8Array {
    const c = this.copies.get(key);
    if (c?.bytes === undefined) throw new CastoreError('internal', `NAR read-ahead: no copy of ${key} for a later place`);
    if (--c.left === 0) {
      this.copies.delete(key);
      this.copiesBytes -= c.size;
    }
    this.stats.reused++;
    return c.bytes;
  }

  private join(item: FileItem): void {
    let g = this.open;
    if (g && (g.bytes + item.bytes > GROUP_BYTES || g.files!.length >= GROUP_FILES)) {
      this.closeOpen();
      g = undefined;
    }
    if (!g) {
      g = { bytes: 0, closed: false, files: [] };
      this.open = g;
      this.pending.push(g);
    }
    item.group = { job: g, index: g.files!.length };
    g.files!.push(item);
    g.bytes += item.bytes;
  }

  private closeOpen(): void {
    if (!this.open) return;
    this.open.closed = true;
    this.open = undefined;
    this.pump();
  }

  // ---- starting reads in order, within the budget

  private pump(): void {
    for (;;) {
      if (this.ctl.signal.aborted) return;
      const next = this.pending.peek();
      if (!next) return;
      let job: Job;
      if ('closed' in next) {
        if (!next.closed) return;
        job = next;
      } else {
        const parts = next.parts!;
        const length = Math.min(this.hint.rangeBytes, next.bytes - parts.planned);
        job = { bytes: length, closed: true, range: { digest: next.digest, offset: parts.planned, length } };
      }
      const s = this.stats;
      if (s.inFlight >= this.hint.reads) return;
      if (s.held > 0 && s.held + job.bytes > this.hint.bytes) return;
      if (!this.holdShared(s.held + job.bytes) && s.held > 0) return;
      if ('closed' in next) this.pending.shift();
      else {
        next.parts!.jobs.push(job);
        next.parts!.planned += job.bytes;
        if (next.parts!.planned >= next.bytes) this.pending.shift();
      }
      this.start(job);
    }
  }

  private start(job: Job): void {
    const s = this.stats;
    s.held += job.bytes;
    s.peakHeld = Math.max(s.peakHeld, s.held);
    s.inFlight++;
    s.peakInFlight = Math.max(s.peakInFlight, s.inFlight);
    s.started++;
    const result = runJob(job, this.store.blobs, this.ctl.signal);
    job.result = result;
    const settled: Promise<void> = result.then(
      (value) => {
        job.value = value;
        this.finished(settled);
      },
      () => this.finished(settled),
    );
    this.running.add(settled);
    this.wakeWriter.wake();
  }

  private finished(p: Promise<void>): void {
    this.stats.inFlight--;
    this.running.delete(p);
    this.pump();
  }

  private releaseTaken(): void {
    if (this.taken === 0) return;
    const t = this.taken;
    this.taken = 0;
    this.release(t);
  }

  private release(bytes: number): void {
    this.stats.held -= bytes;
    const b = this.budget;
    if (b) b.holding.set(Math.min(b.holding.bytes, Math.max(0, this.stats.held - b.free)));
    this.pump();
  }

  /** Holds what `held` bytes of reads need of the shared budget; false if it refuses. */
  private holdShared(held: number): boolean {
    const b = this.budget;
    if (!b) return true;
    const need = Math.max(0, held - b.free);
    return need <= b.holding.bytes || b.holding.set(need);
  }

  /** A job's result, starting it first if the writer got there before the budget did. */
  private async resultOf(job: Job): Promise<(Uint8Array[] | Error)[]> {
    if (this.open === job) this.closeOpen();
    while (!job.result) {
      this.checkOuter();
      this.ctl.signal.throwIfAborted();
      await this.wakeWriter.wait();
    }
    return job.result;
  }

  /** Piece k of a large file, once started. */
  private async part(item: FileItem, k: number): Promise<Job> {
    while (item.parts!.jobs.length <= k) {
      this.checkOuter();
      this.ctl.signal.throwIfAborted();
      await this.wakeWriter.wait();
    }
    return item.parts!.jobs[k];
  }
}
