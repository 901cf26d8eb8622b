// BLAKE3 digests as castore uses them: raw 32 bytes on the wire, `b3:<base64>`
// for humans. Hashing goes through the native @napi-rs/blake-hash addon
// (several times faster than the WASM builds).
import { Blake3Hasher, blake3UrlSafeBase64 } from '@napi-rs/blake-hash';
import { invalid } from './errors.js';

export const B3_LEN = 32;

/**
 * The digest of bytes at hand. One call: creating a Blake3Hasher costs
 * 10-20 µs, several times hashing a small file, and a copy hashes tens of
 * thousands of those on each side. The addon's Buffer-returning blake3()
 * costs ~8 µs more per call than its string form (each result its own
 * external ArrayBuffer, which the garbage collector then tracks and
 * sweeps); the string is decoded into Node's pooled small-buffer memory.
 */
export function blake3(data: Uint8Array): Buffer {
  return Buffer.from(blake3UrlSafeBase64(data), 'base64url');
}

/**
 * The addon gives every digest an ArrayBuffer of its own (a backing store,
 * an extension, two objects: ~250 bytes for 32). A copy and a daemon keep
 * tens of thousands of digests alive for a whole store path, so they are
 * copied into Node's shared pool (a view each) and the original dies young.
 */
function pooled(digest: Buffer): Buffer {
  return Buffer.from(digest);
}

/** Updates are gathered to this size: BLAKE3 runs half as fast on 13 KiB pieces (network reads) as on 64 KiB. */
const STAGE = 64 * 1024;

export class Blake3Stream {
  private readonly h = new Blake3Hasher();
  private stage: Buffer | undefined;
  private staged = 0;

  update(chunk: Uint8Array): this {
    let off = 0;
    while (off < chunk.length) {
      if (this.staged === 0 && chunk.length - off >= STAGE) {
        this.h.update(off === 0 ? chunk : chunk.subarray(off));
        return this;
      }
      this.stage ??= Buffer.allocUnsafe(STAGE);
      const n = Math.min(chunk.length - off, STAGE - this.staged);
      this.stage.set(chunk.subarray(off, off + n), this.staged);
      this.staged += n;
      off += n;
      if (this.staged === STAGE) {
        this.h.update(this.stage);
        this.staged = 0;
      }
    }
    return this;
  }

  digest(): Buffer {
    if (this.staged > 0) this.h.update(this.stage!.subarray(0, this.staged));
    this.staged = 0;
    return pooled(this.h.digestBuffer());
  }
}

export const EMPTY_BLOB_DIGEST = blake3(new Uint8Array(0));

export function isB3(digest: Uint8Array | undefined): digest is Uint8Array {
  return digest !== undefined && digest.length === B3_LEN;
}

/** `b3:<base64>` as tvix prints digests in logs and errors. */
export function b3String(digest: Uint8Array): string {
  return 'b3:' + Buffer.from(digest).toString('base64');
}

/** A digest as a Map key: its bytes as a one-byte string (hex took twice the characters and time). */
export function digestKey(d: Uint8Array): string {
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('latin1');
}

export function b3Hex(digest: Uint8Array): string {
  // No copy (Buffer.from(Uint8Array) copies): a batch Has hexes ~123k digests.
  return (Buffer.isBuffer(digest) ? digest : Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength)).toString('hex');
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** Services reject digests of the wrong length the same way on every backend. */
export function checkB3(digest: Uint8Array): void {
  if (!isB3(digest)) throw invalid('invalid digest length');
}
