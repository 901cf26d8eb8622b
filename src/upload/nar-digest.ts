// The per-path NAR SHA-256 as ingesting feeds it: on this thread
// (InlineNarDigest), or on a thread of its own (hash-thread.ts), which
// takes a sixth of a copy's work off the thread that walks, reads and
// stores.
import { createHash, type Hash } from 'node:crypto';
import { Blake3Stream } from '../castore/digest.js';
import { readChunks } from './file-reader.js';

/** One path's NAR digest being computed. */
export interface NarDigest {
  /** The NAR's next bytes; the caller may reuse `bytes` once this returns. */
  update(bytes: Uint8Array): void;
  /**
   * A large file's `size` bytes, read from `path` into the NAR in their
   * place (after what update() gave so far); resolves to its BLAKE3 digest.
   */
  file(path: Buffer, size: number): Promise<Buffer>;
  /** Whether more may be written before file()'s promise resolved (else the caller awaits it first). */
  readonly readsAhead: boolean;
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

/** What a file that did not give the bytes its size promised is told. */
export function fileChanged(size: number, got: number): string {
  return `file contents too ${got < size ? 'short' : 'long'}: expected ${size} bytes, got ${got} (did the file change while it was read?)`;
}

export class InlineNarDigest implements NarDigest {
  private readonly hash: Hash = createHash('sha256');
  readonly readsAhead = false;
  update(bytes: Uint8Array): void {
    this.hash.update(bytes);
  }
  /** Streamed in chunks through reused buffers, one read ahead. */
  async file(path: Buffer, size: number): Promise<Buffer> {
    const b3 = new Blake3Stream();
    let got = 0;
    for await (const chunk of readChunks(path, size)) {
      b3.update(chunk);
      this.hash.update(chunk);
      got += chunk.length;
    }
    if (got !== size) throw new Error(`${path.toString()}: ${fileChanged(size, got)}`);
    return b3.digest();
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
