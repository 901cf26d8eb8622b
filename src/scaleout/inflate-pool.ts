// Decoding and checking of stored blobs on threads of their own. Rendering
// a NAR from the S3 store spent half of its main thread's time in zstd
// (WebAssembly) and BLAKE3: the thread that receives the GETs and writes
// the NAR waited on it while the other core had room. A job's stored bytes
// are copied into a buffer of its own and moved (not copied) to a thread;
// the raw bytes come back moved too.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** What a job's input (its stored bytes) is: raw, or zstd frames that decode to exactly `raw` bytes. */
export interface InflateUnit {
  raw: number;
  compressed: boolean;
  /** The raw bytes are pieces of these lengths, end to end … */
  lengths: number[];
  /** … each of whose BLAKE3 begins with this (a whole digest or a frame's check bytes). */
  checks: Uint8Array[];
}

/**
 * A job as sent: its checks copied end to end into one small buffer. A
 * typed array is posted with its whole ArrayBuffer, and a digest is often
 * a view of a large one (a directory's bytes, a database reply): 32 bytes
 * of a 1 MiB buffer cost ~1 ms per message here, compact ones ~40 µs.
 */
export interface InflateJob extends Omit<InflateUnit, 'checks'> {
  id: number;
  /** The stored bytes are its first `stored` (it may be larger: reused). */
  input: ArrayBuffer;
  stored: number;
  checks: Uint8Array;
  /** Bytes of each piece's check in `checks`. */
  checkLengths: number[];
}

/** A unit's raw bytes, or why not: the decoder's message, or 'mismatch' and the piece that failed its check. */
export type UnitResult = { bytes: Uint8Array } | { error: string; piece?: number };

export interface InflateReply {
  id: number;
  result: UnitResult;
  /** The job's input, moved back: reused for a later job's unless raw bytes handed on are a view of it. */
  input: ArrayBuffer;
}

/** Inputs up to this size (a power of two) are kept for reuse, this many bytes in all: fresh memory costs a page fault per 4 KiB. */
const REUSED_INPUT = 8 << 20;
const SPARE_BYTES = 8 << 20;

/** Threads at most: one per core, up to 4 (~560 MB/s of raw bytes each, WebAssembly zstd on these CPUs). */
const THREADS = Math.max(1, Math.min(4, availableParallelism()));

interface Thread {
  worker: Worker;
  pending: Map<number, { resolve: (r: UnitResult) => void; reject: (err: Error) => void; bytes: number }>;
  bytes: number;
}

/** zstd jobs sent to the threads so far, and threads started (tests see batching in them). */
export const inflateCounts = { compressed: 0, threadsStarted: 0 };

class InflatePool {
  private readonly threads: (Thread | undefined)[] = new Array(THREADS).fill(undefined);
  private nextId = 1;
  private readonly spares = new Map<number, ArrayBuffer[]>();
  private spareBytes = 0;

  /** Decodes and checks the stored bytes `chunks` hold end to end. */
  run(chunks: readonly Uint8Array[], unit: InflateUnit): Promise<UnitResult> {
    let size = 0;
    for (const c of chunks) size += c.length;
    // Not from Node's shared pool: this buffer's memory is moved to the thread.
    const input = new Uint8Array(this.buffer(size), 0, size);
    let at = 0;
    for (const c of chunks) {
      input.set(c, at);
      at += c.length;
    }
    if (unit.compressed) inflateCounts.compressed++;
    const t = this.leastBusy();
    const id = this.nextId++;
    const job: InflateJob = { id, input: input.buffer, stored: size, raw: unit.raw, compressed: unit.compressed, lengths: unit.lengths, ...compactChecks(unit.checks) };
    return new Promise((resolve, reject) => {
      if (t.pending.size === 0) t.worker.ref();
      t.pending.set(id, { resolve, reject, bytes: size });
      t.bytes += size;
      t.worker.postMessage(job, [job.input]);
    });
  }

  /** For tests: ends every thread at once, as a crash would. */
  async terminateAll(): Promise<void> {
    await Promise.all(this.threads.map((t) => t?.worker.terminate()));
  }

  private buffer(size: number): ArrayBuffer {
    if (size > REUSED_INPUT) return new ArrayBuffer(size);
    const capacity = Math.max(64 << 10, 2 ** Math.ceil(Math.log2(size)));
    const spare = this.spares.get(capacity)?.pop();
    if (!spare) return new ArrayBuffer(capacity);
    this.spareBytes -= capacity;
    return spare;
  }

  private reuse(input: ArrayBuffer, result: UnitResult): void {
    const capacity = input.byteLength; // a power of two up to REUSED_INPUT when buffer() made it to be reused
    if (capacity > REUSED_INPUT || this.spareBytes + capacity > SPARE_BYTES || ('bytes' in result && result.bytes.buffer === input)) return;
    let list = this.spares.get(capacity);
    if (!list) this.spares.set(capacity, (list = []));
    list.push(input);
    this.spareBytes += capacity;
  }

  private leastBusy(): Thread {
    let best: Thread | undefined;
    for (let i = 0; i < this.threads.length; i++) {
      const t = (this.threads[i] ??= this.start(i));
      if (!best || t.bytes < best.bytes) best = t;
      if (t.bytes === 0) break;
    }
    return best!;
  }

  private start(slot: number): Thread {
    inflateCounts.threadsStarted++;
    const worker = new Worker(new URL('./inflate-worker.js', import.meta.url), {
      execArgv: [],
      // What it allocates is the decoded bytes (outside V8's heap) and little else.
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
    const t: Thread = { worker, pending: new Map(), bytes: 0 };
    worker.on('message', (m: InflateReply) => {
      const p = t.pending.get(m.id);
      if (!p) return;
      t.pending.delete(m.id);
      t.bytes -= p.bytes;
      if (t.pending.size === 0) worker.unref();
      this.reuse(m.input, m.result);
      p.resolve(m.result);
    });
    const gone = (why: string) => {
      if (this.threads[slot] === t) this.threads[slot] = undefined;
      for (const p of t.pending.values()) p.reject(new Error(`the thread decoding stored blobs ${why}; try again`));
      t.pending.clear();
    };
    worker.on('error', (err) => gone(`failed: ${err.message}`));
    worker.on('exit', (code) => gone(`exited (code ${code})`));
    worker.unref();
    return t;
  }
}

function compactChecks(list: Uint8Array[]): { checks: Uint8Array; checkLengths: number[] } {
  let n = 0;
  for (const c of list) n += c.length;
  const checks = new Uint8Array(n);
  let at = 0;
  for (const c of list) {
    checks.set(c, at);
    at += c.length;
  }
  return { checks, checkLengths: list.map((c) => c.length) };
}

/** The process's threads for decoding stored blobs, started when first needed; idle, they keep no process alive. */
export const inflatePool = new InflatePool();
