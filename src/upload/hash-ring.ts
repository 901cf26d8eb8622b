// A single-producer, single-consumer byte ring in shared memory: the walk
// on the main thread writes NAR bytes into it, the hashing thread
// (hash-worker.ts) hashes them where they are. No message per chunk: the
// positions are shared counters, and a side sleeps only when it has nothing
// to do (a futex wake-up per PUBLISH_EVERY bytes at most).
//
// Every sleep has its wake-up (issue 21: a lost one hung a copy). A side
// sleeps on a sequence word the other bumps after each change the sleeper
// depends on, and announces its sleep (a flag) before it re-reads that
// state: the other side changes the state, bumps the word, then reads the
// flag, so either the sleeper sees the change or the waker sees the flag.
// No wait has a timeout to fall back on.
//
// Records are 8-byte aligned: a header (stream id, length or a control
// code) and that many bytes, which may wrap around the end.

/** Ring size: a power of two (positions are 32-bit counters that wrap). */
export const RING_BYTES = 8 << 20;
/** The largest piece one record holds. */
const MAX_PIECE = 1 << 20;
/** Bytes written before the consumer is told of them (at the latest). */
const PUBLISH_EVERY = 1 << 20;

/** Indexes into the control words. */
export const Ctl = {
  /** Write position (published). */
  W: 0,
  /** Read position. */
  R: 1,
  /** Set while the consumer sleeps on W_SEQ. */
  SLEEP: 2,
  /** Set to make the consumer return. */
  STOP: 3,
  /** Free bytes the producer waits for (0: none); the consumer posts 'room' once there are. */
  WANT: 4,
  /** Set by the consumer when it failed: the producer stops waiting for it. */
  DEAD: 5,
  /** Set while the producer blocks on R_SEQ. */
  BLOCKED: 6,
  /** Bumped by the producer after it moved W or set STOP: the consumer sleeps on it. */
  W_SEQ: 7,
  /** Bumped by the consumer after it moved R (while BLOCKED) or set DEAD: the producer blocks on it. */
  R_SEQ: 8,
} as const;
const CTL_WORDS = 12;

/** Control codes in a record's length field. */
export const END = -1;
export const ABORT = -2;
/** A file the consumer reads itself, in its place in the stream: [payload length, file number], then its size (f64) and path. */
export const FILE = -3;

export interface RingMemory {
  ctl: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

export function ringMemory(bytes = RING_BYTES): RingMemory {
  if (bytes & (bytes - 1) || bytes < 2 * MAX_PIECE) throw new RangeError(`ring size ${bytes}: must be a power of two of at least ${2 * MAX_PIECE}`);
  return { ctl: new SharedArrayBuffer(CTL_WORDS * 4), data: new SharedArrayBuffer(bytes) };
}

const pad8 = (n: number): number => (n + 7) & ~7;

export class RingGone extends Error {
  override name = 'RingGone';
}

export class RingWriter {
  private readonly ctl: Int32Array;
  private readonly data: Uint8Array;
  private readonly words: Int32Array;
  private readonly cap: number;
  private w = 0;
  private published = 0;
  /** Times a write had to block this thread for room (tests: the walk's room checks make it rare). */
  blocked = 0;

  constructor(mem: RingMemory) {
    this.ctl = new Int32Array(mem.ctl);
    this.data = new Uint8Array(mem.data);
    this.words = new Int32Array(mem.data);
    this.cap = this.data.length;
  }

  get capacity(): number {
    return this.cap;
  }

  /** Bytes that can be written now without waiting. */
  free(): number {
    return this.cap - ((this.w - Atomics.load(this.ctl, Ctl.R)) | 0);
  }

  get dead(): boolean {
    return Atomics.load(this.ctl, Ctl.DEAD) !== 0;
  }

  write(stream: number, bytes: Uint8Array): void {
    for (let off = 0; off < bytes.length; off += MAX_PIECE) {
      const n = Math.min(bytes.length - off, MAX_PIECE);
      this.reserve(8 + pad8(n));
      const at = this.header(stream, n);
      const first = Math.min(n, this.cap - at);
      this.data.set(bytes.subarray(off, off + first), at);
      if (first < n) this.data.set(bytes.subarray(off + first, off + n), 0);
      this.w = (this.w + 8 + pad8(n)) | 0;
    }
    if (((this.w - this.published) | 0) >= PUBLISH_EVERY) this.publish();
  }

  /** A control record (END, ABORT), published at once. */
  control(stream: number, code: number): void {
    this.reserve(8);
    this.header(stream, code);
    this.w = (this.w + 8) | 0;
    this.publish();
  }

  /** A FILE record: the consumer reads `size` bytes of `path` into the stream there. */
  file(stream: number, seq: number, size: number, path: Uint8Array): void {
    const payload = 8 + path.length;
    this.reserve(16 + pad8(payload));
    let at = this.header(stream, FILE);
    this.words[at >> 2] = payload;
    this.words[(at >> 2) + 1] = seq;
    at = (at + 8) & (this.cap - 1);
    const bytes = Buffer.allocUnsafe(payload);
    bytes.writeDoubleLE(size, 0);
    bytes.set(path, 8);
    const first = Math.min(payload, this.cap - at);
    this.data.set(bytes.subarray(0, first), at);
    if (first < payload) this.data.set(bytes.subarray(first), 0);
    this.w = (this.w + 16 + pad8(payload)) | 0;
    this.publish();
  }

  /** Tells the consumer of everything written. */
  publish(): void {
    if (this.published === this.w) return;
    Atomics.store(this.ctl, Ctl.W, this.w);
    this.published = this.w;
    this.wakeConsumer();
  }

  /**
   * Asks the consumer to post 'room' once `n` bytes are free (one request
   * at a time: the caller asks for the least any of its waiters needs);
   * false if they are free already, and then nothing is asked.
   */
  armRoom(n: number): boolean {
    this.publish();
    Atomics.store(this.ctl, Ctl.WANT, n);
    // After the request: the consumer stores R before it reads WANT, so it sees the request or this sees its R.
    if (this.free() < n) return true;
    Atomics.store(this.ctl, Ctl.WANT, 0);
    return false;
  }

  /** No 'room' wanted any more (a 'room' the consumer already posted still arrives). */
  disarmRoom(): void {
    Atomics.store(this.ctl, Ctl.WANT, 0);
  }

  stop(): void {
    Atomics.store(this.ctl, Ctl.STOP, 1);
    this.wakeConsumer();
  }

  /** After a change the consumer may sleep on: bump W_SEQ, then wake it if it announced a sleep. */
  private wakeConsumer(): void {
    Atomics.add(this.ctl, Ctl.W_SEQ, 1);
    if (Atomics.load(this.ctl, Ctl.SLEEP) !== 0) Atomics.notify(this.ctl, Ctl.W_SEQ);
  }

  private header(stream: number, lenOrCode: number): number {
    const at = this.w & (this.cap - 1);
    this.words[at >> 2] = stream;
    this.words[(at >> 2) + 1] = lenOrCode;
    return (at + 8) & (this.cap - 1);
  }

  /**
   * Waits (blocking this thread) until `n` bytes are free. Callers check
   * room first (NarDigest.room), so this is rare and short: the consumer
   * hashes faster than one thread reads.
   */
  private reserve(n: number): void {
    if (this.free() >= n) return;
    this.publish();
    this.blocked++;
    Atomics.store(this.ctl, Ctl.BLOCKED, 1);
    try {
      for (;;) {
        // The sequence first, then the state it guards: a change after this read bumps it, and the wait returns.
        const seq = Atomics.load(this.ctl, Ctl.R_SEQ);
        if (this.free() >= n) return;
        if (this.dead) throw new RingGone('the hashing thread stopped');
        Atomics.wait(this.ctl, Ctl.R_SEQ, seq);
      }
    } finally {
      Atomics.store(this.ctl, Ctl.BLOCKED, 0);
    }
  }
}

export interface RingConsumer {
  data(stream: number, bytes: Uint8Array): void;
  control(stream: number, code: number): void;
  /** A FILE record. */
  file(stream: number, seq: number, size: number, path: Buffer): void;
  /** `WANT` bytes are free. */
  room(): void;
}

/** The consumer's loop: returns once STOP is set and everything is read. */
export function consumeRing(mem: RingMemory, on: RingConsumer): void {
  const ctl = new Int32Array(mem.ctl);
  const data = new Uint8Array(mem.data);
  const words = new Int32Array(mem.data);
  const cap = data.length;
  const mask = cap - 1;
  let r = 0;
  try {
    for (;;) {
      // The sequence first, then the state it guards (W, STOP): a change after these reads bumps it, and the wait returns.
      const seq = Atomics.load(ctl, Ctl.W_SEQ);
      const w = Atomics.load(ctl, Ctl.W);
      if (w === r) {
        if (Atomics.load(ctl, Ctl.STOP) !== 0) return;
        Atomics.store(ctl, Ctl.SLEEP, 1);
        Atomics.wait(ctl, Ctl.W_SEQ, seq);
        Atomics.store(ctl, Ctl.SLEEP, 0);
        continue;
      }
      while (r !== w) {
        const at = r & mask;
        const stream = words[at >> 2];
        const len = words[(at >> 2) + 1];
        let next = (r + 8) | 0;
        if (len >= 0) {
          const from = next & mask;
          const first = Math.min(len, cap - from);
          on.data(stream, data.subarray(from, from + first));
          if (first < len) on.data(stream, data.subarray(0, len - first));
          next = (next + pad8(len)) | 0;
        } else if (len === FILE) {
          const from = (next & mask) >> 2;
          const payload = words[from];
          const seq = words[from + 1];
          const at = (next + 8) & mask;
          const first = Math.min(payload, cap - at);
          const bytes = Buffer.concat([data.subarray(at, at + first), data.subarray(0, payload - first)]);
          on.file(stream, seq, bytes.readDoubleLE(0), bytes.subarray(8));
          next = (next + 8 + pad8(payload)) | 0;
        } else on.control(stream, len);
        r = next;
        Atomics.store(ctl, Ctl.R, r);
        if (Atomics.load(ctl, Ctl.BLOCKED) !== 0) {
          Atomics.add(ctl, Ctl.R_SEQ, 1);
          Atomics.notify(ctl, Ctl.R_SEQ);
        }
        // WANT read after R stored (see armRoom); cleared here, so each request is answered once.
        const want = Atomics.load(ctl, Ctl.WANT);
        if (want > 0 && cap - ((Atomics.load(ctl, Ctl.W) - r) | 0) >= want && Atomics.compareExchange(ctl, Ctl.WANT, want, 0) === want) on.room();
      }
    }
  } catch (err) {
    Atomics.store(ctl, Ctl.DEAD, 1);
    Atomics.add(ctl, Ctl.R_SEQ, 1);
    Atomics.notify(ctl, Ctl.R_SEQ);
    throw err;
  }
}
