// gRPC length-prefixed messages inside HTTP/2 DATA: a flag byte (1 =
// compressed), a u32 big-endian length, the payload. DATA frame boundaries
// mean nothing: one frame may hold several messages, a message may span
// many frames.
import { status } from '../status-codes.js';
import { GrpcError } from './status.js';

export const PREFIX_BYTES = 5;

/** Prefix and payload in one buffer: a copy, but one write (and one DATA frame when small). */
export function framed(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(PREFIX_BYTES + payload.length);
  out[0] = 0;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, PREFIX_BYTES);
  return out;
}

/** The prefix (and room for `extra` bytes after it), to send before a large payload without copying it. */
export function prefixFor(length: number, extra = 0): Buffer {
  const out = Buffer.allocUnsafe(PREFIX_BYTES + extra);
  out[0] = 0;
  out.writeUInt32BE(length, 1);
  return out;
}

/**
 * Where the data starts in a BlobChunk of `length` bytes whose first bytes
 * are `head`, if it is one `data` field and nothing else (what clients
 * and servers send); undefined for any other shape, which is then
 * decoded whole.
 */
export function blobChunkDataStart(length: number, head: Buffer): number | undefined {
  if (head.length < 2 || head[0] !== 0x0a) return undefined;
  let value = 0;
  let scale = 1;
  // Messages are below 4 GiB: the length varint has at most 5 bytes.
  for (let i = 1; i < head.length && i <= 5; i++) {
    value += (head[i] & 0x7f) * scale;
    if (head[i] < 0x80) return value === length - (i + 1) ? i + 1 : undefined;
    scale *= 128;
  }
  return undefined;
}

/**
 * Reassembles messages from DATA chunks. A complete message inside one
 * chunk is handed on as a view of it (no copy); a message that spans
 * chunks is copied together, unless the subclass takes it as pieces
 * (see streamFrom).
 */
export abstract class MessageReader {
  /** A prefix or payload begun in an earlier chunk. */
  private pending: Buffer | undefined;
  private filled = 0;
  private pendingIsPrefix = false;
  /** Bytes still to come of a message taken as pieces. */
  private streamLeft = 0;

  constructor(private readonly maxMessageBytes: number) {}

  protected abstract message(payload: Buffer): void;

  /**
   * Offered a message of `length` bytes that spans DATA chunks, with its
   * first bytes (`head`, possibly fewer than `length`): returning n takes
   * the message as views of the chunks it arrives in, passed to piece()
   * after its first n bytes, instead of copying it into a buffer of its
   * own. A large blob's chunks are then never copied or allocated.
   */
  protected streamFrom(_length: number, _head: Buffer): number | undefined {
    return undefined;
  }

  protected piece(_bytes: Buffer): void {}

  /** Bytes allocated for a message (or prefix) begun in an earlier chunk. */
  protected get pendingBytes(): number {
    return this.pending?.length ?? 0;
  }

  /** Forgets a message begun in an earlier chunk (the stream has failed). */
  protected dropPending(): void {
    this.pending = undefined;
  }

  /** Whether the bytes so far stop inside a message. */
  protected get midMessage(): boolean {
    return this.pending !== undefined || this.streamLeft > 0;
  }

  /** Feeds one DATA chunk; a malformed stream returns the error and must not be fed further. */
  protected readData(chunk: Buffer): GrpcError | undefined {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.streamLeft > 0) {
        const n = Math.min(this.streamLeft, chunk.length - pos);
        this.piece(chunk.subarray(pos, pos + n));
        this.streamLeft -= n;
        pos += n;
        continue;
      }
      if (this.pending === undefined) {
        if (chunk.length - pos < PREFIX_BYTES) {
          this.expect(PREFIX_BYTES, true);
          continue;
        }
        const len = chunk.readUInt32BE(pos + 1);
        const bad = this.check(chunk[pos], len);
        if (bad) return bad;
        pos += PREFIX_BYTES;
        if (chunk.length - pos >= len) {
          this.message(chunk.subarray(pos, pos + len));
          pos += len;
          continue;
        }
        const skip = this.streamFrom(len, chunk.subarray(pos));
        if (skip === undefined) this.expect(len, false);
        else {
          pos += skip;
          this.streamLeft = len - skip;
        }
        continue;
      }
      const n = Math.min(this.pending.length - this.filled, chunk.length - pos);
      chunk.copy(this.pending, this.filled, pos, pos + n);
      this.filled += n;
      pos += n;
      if (this.filled < this.pending.length) return undefined;
      const done = this.pending;
      this.pending = undefined;
      if (!this.pendingIsPrefix) {
        this.message(done);
        continue;
      }
      const len = done.readUInt32BE(1);
      const bad = this.check(done[0], len);
      if (bad) return bad;
      if (len === 0) this.message(done.subarray(PREFIX_BYTES));
      else this.expect(len, false);
    }
    return undefined;
  }

  private expect(bytes: number, isPrefix: boolean): void {
    this.pending = Buffer.allocUnsafe(bytes);
    this.filled = 0;
    this.pendingIsPrefix = isPrefix;
  }

  private check(flag: number, len: number): GrpcError | undefined {
    if (flag !== 0) return new GrpcError(status.INTERNAL, `received a compressed message (flag ${flag}), but no compression was negotiated`);
    if (len > this.maxMessageBytes) return new GrpcError(status.RESOURCE_EXHAUSTED, `received a message larger than max (${len} vs. ${this.maxMessageBytes})`);
    return undefined;
  }
}
