// Per-path NAR SHA-256s on a thread of their own. On a copy into a local
// store, the main thread walks, reads, frames, BLAKE3s and stores every
// file, and SHA-256 was a fifth of its time while the second core idled.
// The walk copies NAR bytes into a shared ring (hash-ring.ts) and goes on;
// the hashing thread hashes them and posts each path's digest, which the
// path awaits before it is published.
import { Worker } from 'node:worker_threads';
import { ABORT, END, RingGone, RingWriter, ringMemory, type RingMemory } from './hash-ring.js';
import type { NarDigest, NarHashing } from './nar-digest.js';

export interface HashWorkerData {
  ring: RingMemory;
  /** For tests: the thread fails once it hashed this many bytes. */
  failAfterBytes?: number;
}

export type HashReply =
  | { type: 'digest'; stream: number; digest?: Uint8Array; error?: string; bytes: number }
  | { type: 'file'; stream: number; seq: number; digest?: Uint8Array; error?: string }
  | { type: 'room' };

/** Free ring bytes a walk asks for beyond a file's own: NarFramer's buffer (64 KiB) and headers. */
const HEADROOM = 80 << 10;

export class HashThread implements NarHashing {
  private worker: Worker | undefined;
  private readonly mem: RingMemory;
  private readonly ring: RingWriter;
  private nextStream = 1;
  private readonly pending = new Map<number, { what: string; resolve: (d: Buffer) => void; reject: (err: Error) => void }>();
  /** Large files the thread reads, by `stream:seq`. */
  private readonly files = new Map<string, { what: string; resolve: (d: Buffer) => void; reject: (err: Error) => void }>();
  private nextFile = 1;
  /** Walks waiting for free ring bytes, each for its own amount. */
  private roomWaiters: { n: number; wake: () => void }[] = [];
  private gone: Error | undefined;
  private offThread = 0;
  /** Streams begun and not yet ended or aborted. */
  private open = 0;

  constructor(private readonly opts: { failAfterBytes?: number; ringBytes?: number } = {}) {
    this.mem = ringMemory(opts.ringBytes);
    this.ring = new RingWriter(this.mem);
  }

  get bytesOffThread(): number {
    return this.offThread;
  }

  /** Whether the thread runs (tests: none is left behind). */
  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Times a walk waited for room in the ring (tests). */
  roomWaits = 0;

  /** Times a write blocked the walk's thread because the ring was full (tests). */
  get blockedWrites(): number {
    return this.ring.blocked;
  }

  begin(what: string): NarDigest {
    this.started();
    // Its waits for room and digest are messages from the thread: they keep the process alive only while it is ref'd.
    if (this.open++ === 0) this.worker?.ref();
    return new ThreadNarDigest(this, this.nextStream++, what);
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.fail(new Error('the hashing thread was closed'));
    this.ring.stop();
    if (w) await w.terminate();
  }

  /** @internal (ThreadNarDigest) */
  write(stream: number, bytes: Uint8Array, what: string): void {
    this.check(what);
    try {
      this.ring.write(stream, bytes);
    } catch (err) {
      throw this.failure(err, what);
    }
  }

  /** @internal */
  free(): number {
    return this.ring.free();
  }

  /** @internal Bytes a wait for room may ask for at most. */
  get maxRoom(): number {
    return this.ring.capacity / 2;
  }

  /** @internal Resolves once `n` ring bytes were free (another walk may take them first: check again). */
  async room(n: number, what: string): Promise<void> {
    this.check(what);
    n = Math.min(n, this.maxRoom); // more would never be free
    if (this.ring.free() >= n) return;
    this.roomWaits++;
    await new Promise<void>((wake) => {
      this.roomWaiters.push({ n, wake });
      this.settleRoom();
    });
    this.check(what);
  }

  /**
   * Wakes the waiters there is room for and asks the thread for the least
   * the others need. One request for all: a walk that finds room must not
   * withdraw another's (issue 21: it did, and the other waited forever).
   */
  private settleRoom(): void {
    for (;;) {
      const free = this.ring.free();
      let least = Infinity;
      const still: { n: number; wake: () => void }[] = [];
      for (const w of this.roomWaiters) {
        if (w.n <= free) w.wake();
        else {
          still.push(w);
          least = Math.min(least, w.n);
        }
      }
      this.roomWaiters = still;
      if (still.length === 0) return this.ring.disarmRoom();
      // Armed: the thread posts 'room' once `least` bytes are free. Not armed: they became free meanwhile, wake again.
      if (this.ring.armRoom(least)) return;
    }
  }

  /** @internal */
  end(stream: number, what: string): Promise<Buffer> {
    this.check(what);
    const p = new Promise<Buffer>((resolve, reject) => this.pending.set(stream, { what, resolve, reject }));
    try {
      this.ring.control(stream, END);
    } catch (err) {
      this.pending.delete(stream);
      throw this.failure(err, what);
    }
    return p;
  }

  /** @internal */
  file(stream: number, path: Buffer, size: number, what: string): Promise<Buffer> {
    this.check(what);
    const seq = this.nextFile++;
    const p = new Promise<Buffer>((resolve, reject) => this.files.set(`${stream}:${seq}`, { what, resolve, reject }));
    try {
      this.ring.file(stream, seq, size, path);
    } catch (err) {
      this.files.delete(`${stream}:${seq}`);
      throw this.failure(err, what);
    }
    return p;
  }

  /** @internal The stream's digest is in, or it was dropped. */
  closed(): void {
    if (--this.open === 0) this.worker?.unref();
  }

  /** @internal */
  abort(stream: number): void {
    if (this.gone) return;
    try {
      this.ring.control(stream, ABORT);
    } catch {
      // gone: nothing to drop
    }
  }

  private check(what: string): void {
    if (this.gone) throw new Error(`hashing the NAR of ${what} failed: ${this.gone.message}`);
  }

  private failure(err: unknown, what: string): Error {
    if (err instanceof RingGone) return new Error(`hashing the NAR of ${what} failed: ${this.gone?.message ?? 'the hashing thread stopped'}`);
    return err as Error;
  }

  private started(): void {
    if (this.worker || this.gone) return;
    const data: HashWorkerData = { ring: this.mem, failAfterBytes: this.opts.failAfterBytes };
    const w = new Worker(new URL('./hash-worker.js', import.meta.url), {
      workerData: data,
      execArgv: [],
      // It allocates next to nothing: small semi-spaces keep its memory small.
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
    w.on('message', (m: HashReply) => this.onReply(m));
    w.on('error', (err) => this.fail(new Error(`the hashing thread failed: ${err.message}`)));
    w.on('exit', (code) => this.fail(new Error(`the hashing thread exited (code ${code})`)));
    w.unref();
    this.worker = w;
  }

  private onReply(m: HashReply): void {
    if (m.type === 'room') return this.settleRoom();
    const key = m.type === 'file' ? `${m.stream}:${m.seq}` : m.stream;
    const waiting = m.type === 'file' ? this.files : this.pending;
    const p = (waiting as Map<string | number, { what: string; resolve: (d: Buffer) => void; reject: (err: Error) => void }>).get(key);
    if (!p) return;
    waiting.delete(key as never);
    if (m.type === 'digest') this.offThread += m.bytes;
    if (m.digest) p.resolve(Buffer.from(m.digest.buffer, m.digest.byteOffset, m.digest.byteLength));
    else p.reject(new Error(m.type === 'file' ? m.error! : `hashing the NAR of ${p.what} failed: ${m.error!}`));
  }

  private fail(err: Error): void {
    this.gone ??= err;
    this.worker = undefined;
    for (const p of this.pending.values()) p.reject(new Error(`hashing the NAR of ${p.what} failed: ${this.gone.message}`));
    this.pending.clear();
    for (const p of this.files.values()) p.reject(new Error(`hashing the NAR of ${p.what} failed: ${this.gone.message}`));
    this.files.clear();
    // Waiters see the failure when they check again.
    for (const w of this.roomWaiters.splice(0)) w.wake();
  }
}

class ThreadNarDigest implements NarDigest {
  private done = false;
  constructor(
    private readonly thread: HashThread,
    private readonly stream: number,
    private readonly what: string,
  ) {}

  readonly readsAhead = true;

  update(bytes: Uint8Array): void {
    this.thread.write(this.stream, bytes, this.what);
  }

  file(path: Buffer, size: number): Promise<Buffer> {
    return this.thread.file(this.stream, path, size, this.what);
  }

  hasRoom(n: number): boolean {
    return this.thread.free() >= Math.min(n + HEADROOM, this.thread.maxRoom);
  }

  room(n: number): Promise<void> {
    return this.thread.room(Math.min(n + HEADROOM, this.thread.maxRoom), this.what);
  }

  digest(): Promise<Buffer> {
    this.done = true;
    try {
      const p = this.thread.end(this.stream, this.what);
      p.then(
        () => this.thread.closed(),
        () => this.thread.closed(),
      );
      return p;
    } catch (err) {
      this.thread.closed();
      throw err;
    }
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    this.thread.abort(this.stream);
    this.thread.closed();
  }
}
