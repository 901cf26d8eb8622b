// BLAKE3 digests as castore uses them: raw 32 bytes on the wire, `b3:<base64>`
// for humans. Hashing goes through the native @napi-rs/blake-hash addon
// (several times faster than the WASM builds).
import { Blake3Hasher, blake3 as blake3OneShot } from '@napi-rs/blake-hash';
import { invalid } from './errors.js';

export const B3_LEN = 32;

/**
 * The digest of bytes at hand. One call: creating a Blake3Hasher costs
 * 10-20 µs, several times hashing a small file, and a copy hashes tens of
 * thousands of those on each side.
 */
export function blake3(data: Uint8Array): Buffer {
  return blake3OneShot(data);
}

export class Blake3Stream {
  private readonly h = new Blake3Hasher();
  update(chunk: Uint8Array): this {
    this.h.update(chunk);
    return this;
  }
  digest(): Buffer {
    return this.h.digestBuffer();
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

export function b3Hex(digest: Uint8Array): string {
  return Buffer.from(digest).toString('hex');
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** Services reject digests of the wrong length the same way on every backend. */
export function checkB3(digest: Uint8Array): void {
  if (!isB3(digest)) throw invalid('invalid digest length');
}
