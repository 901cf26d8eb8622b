// Reused memory for the batch Puts a daemon receives. Their blobs used to
// stay views of Node's HTTP/2 socket reads (a fresh 64 KiB ArrayBuffer
// each) until the batch was durable, a few ms later: long enough to
// survive young collections, so every read was promoted, and V8 answered
// the old external memory piling up with a full collection per ~15 MiB
// received. Copied into an arena at once, the reads die young; an arena is
// reused once the Put that filled it has succeeded (a failed Put may have
// left a write queued that still reads it: its arena is dropped instead).

/** Arenas made at most: the batch Puts one client keeps in flight (4), and one (each is 4 MiB of the daemon's RSS). */
const KEEP = 5;
/** Arenas are this large (the default message limit); larger messages get memory of their own. */
export const ARENA_BYTES = 4 << 20;

export class ReceiveArenas {
  private readonly free: Buffer[] = [];
  private readonly arenas = new WeakSet<Buffer>();
  private made = 0;

  /** At most `keep` arenas are ever made: past them a message gets memory of its own size, so many small calls cannot hold 4 MiB each. */
  constructor(private readonly keep = KEEP) {}

  /** At least `length` bytes to copy a message into. */
  take(length: number): Buffer {
    if (length <= ARENA_BYTES) {
      const reused = this.free.pop();
      if (reused) return reused;
      if (this.made < this.keep) {
        this.made++;
        const arena = Buffer.allocUnsafeSlow(ARENA_BYTES);
        this.arenas.add(arena);
        return arena;
      }
    }
    return Buffer.allocUnsafe(length);
  }

  /** Memory from take() that nothing refers to any more (other than arenas is left to the collector). */
  give(memory: Buffer): void {
    if (this.arenas.has(memory)) this.free.push(memory);
  }

  /** Arenas waiting to be reused (for tests). */
  get idle(): number {
    return this.free.length;
  }
}

/** The daemon's arenas, shared by its connections. */
export const receiveArenas = new ReceiveArenas();
