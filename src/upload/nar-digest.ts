// The per-path NAR SHA-256 as ingesting feeds it: on this thread
// (InlineNarDigest), or on a thread of its own (hash-thread.ts), which
// takes a sixth of a copy's work off the thread that walks, reads and
// stores.
import { createHash, type Hash } from 'node:crypto';

/** One path's NAR digest being computed. */
export interface NarDigest {
  /** The NAR's next bytes; the caller may reuse `bytes` once this returns. */
  update(bytes: Uint8Array): void;
  /** Whether `n` more bytes can be taken without waiting (update() blocks otherwise). */
  hasRoom(n: number): boolean;
  /** Resolves once hasRoom(n) holds. */
  room(n: number): Promise<void>;
  /** The SHA-256 of every byte given, once all are hashed. */
  digest(): Promise<Buffer>;
  /** Drops the digest (the path failed). */
  abort(): void;
}

/** Makes the NarDigest of each path a copy ingests. */
export interface NarHashing {
  begin(what: string): NarDigest;
  /** Bytes hashed off this thread so far (0 for the inline form). */
  readonly bytesOffThread: number;
  close(): Promise<void>;
}

const NOW = Promise.resolve();

export class InlineNarDigest implements NarDigest {
  private readonly hash: Hash = createHash('sha256');
  update(bytes: Uint8Array): void {
    this.hash.update(bytes);
  }
  hasRoom(): boolean {
    return true;
  }
  room(): Promise<void> {
    return NOW;
  }
  digest(): Promise<Buffer> {
    return Promise.resolve(this.hash.digest());
  }
  abort(): void {}
}

export const inlineHashing: NarHashing = {
  begin: () => new InlineNarDigest(),
  bytesOffThread: 0,
  close: async () => {},
};
