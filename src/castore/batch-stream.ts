// A PutBlobsRequest read from the pieces it arrives in (views of network
// reads, see MessageReader.streamFrom) rather than from one buffer it was
// copied into: a daemon takes megabytes of small blobs per call, and the
// copy, and V8's collections for the fresh memory, were a good part of
// its work. A Blob that lies within one piece is decoded in place; one
// that spans pieces is copied together first, unless the pieces are
// consecutive views of one buffer holding the whole message (`whole`),
// which it is then a view of. Unknown fields of the outer message are
// skipped, as PutBlobsRequestCodec.decode skips them.
import { ProtoDecodeError } from '../proto/reader.js';
import { decodeBatchBlob, type BatchBlob } from './batch-messages.js';

type State = 'key' | 'length' | 'varint' | 'skip' | 'blob';

export class PutBlobsParser {
  readonly blobs: BatchBlob[] = [];
  /** Bytes of the message not fed yet. */
  private left: number;
  private state: State = 'key';
  private field = 0;
  // A varint being read, perhaps across pieces.
  private value = 0;
  private scale = 1;
  private varintBytes = 0;
  /** Bytes to skip, or of the Blob being read. */
  private need = 0;
  private blob: Buffer | undefined;
  private filled = 0;
  /** Where in the message the Blob being read starts (with `whole`). */
  private blobStart = 0;
  /** Where in the message the piece being fed starts. */
  private pieceStart = 0;

  /** `whole`: every piece fed is a view of it, at the piece's place in the message. */
  constructor(
    private readonly length: number,
    private readonly whole?: Buffer,
  ) {
    this.left = length;
  }

  /** Whether the whole message has been fed. */
  get complete(): boolean {
    return this.left === 0;
  }

  /** Feeds the next bytes of the message; throws ProtoDecodeError on malformed input. */
  feed(piece: Buffer): void {
    if (piece.length > this.left) throw new ProtoDecodeError('more bytes than the message length');
    this.pieceStart = this.length - this.left;
    this.left -= piece.length;
    let pos = 0;
    while (pos < piece.length) {
      if (this.state === 'skip') {
        const n = Math.min(this.need, piece.length - pos);
        pos += n;
        this.need -= n;
        if (this.need === 0) this.state = 'key';
      } else if (this.state === 'blob') {
        pos = this.readBlob(piece, pos);
      } else {
        const b = piece[pos++];
        this.value += (b & 0x7f) * this.scale;
        this.scale *= 0x80;
        if (++this.varintBytes > 10) throw new ProtoDecodeError('varint longer than 10 bytes');
        if (b >= 0x80) continue;
        const v = this.value;
        this.value = 0;
        this.scale = 1;
        this.varintBytes = 0;
        if (!Number.isSafeInteger(v)) throw new ProtoDecodeError('integer larger than 2^53 is not supported');
        this.onVarint(v, this.left + piece.length - pos);
      }
    }
    if (this.left === 0 && (this.state !== 'key' || this.varintBytes > 0)) throw new ProtoDecodeError('truncated message');
  }

  /** `rest`: bytes of the message after the varint. */
  private onVarint(v: number, rest: number): void {
    if (this.state === 'varint') {
      this.state = 'key';
      return;
    }
    if (this.state === 'length') {
      if (v > rest) throw new ProtoDecodeError(`field ${this.field}: length ${v} runs past the end`);
      this.need = v;
      if (this.field === 1) {
        this.state = 'blob';
        if (v === 0) this.endBlob(Buffer.alloc(0));
      } else this.state = v > 0 ? 'skip' : 'key';
      return;
    }
    this.field = Math.floor(v / 8);
    const wireType = v % 8;
    if (this.field === 0) throw new ProtoDecodeError('field number 0');
    if (wireType === 0) this.state = 'varint';
    else if (wireType === 2) this.state = 'length';
    else if (wireType === 1 || wireType === 5) {
      this.need = wireType === 1 ? 8 : 4;
      if (this.need > rest) throw new ProtoDecodeError(`field ${this.field}: truncated fixed value`);
      this.state = 'skip';
    } else throw new ProtoDecodeError(`field ${this.field}: unsupported wire type ${wireType}`);
  }

  private readBlob(piece: Buffer, pos: number): number {
    if (this.filled === 0 && piece.length - pos >= this.need) {
      this.endBlob(piece.subarray(pos, pos + this.need));
      return pos + this.need;
    }
    if (this.filled === 0) this.blobStart = this.pieceStart + pos;
    const n = Math.min(this.need - this.filled, piece.length - pos);
    if (!this.whole) {
      this.blob ??= Buffer.allocUnsafe(this.need);
      piece.copy(this.blob, this.filled, pos, pos + n);
    }
    this.filled += n;
    if (this.filled === this.need) {
      const bytes = this.whole ? this.whole.subarray(this.blobStart, this.blobStart + this.need) : this.blob!;
      this.blob = undefined;
      this.filled = 0;
      this.endBlob(bytes);
    }
    return pos + n;
  }

  private endBlob(bytes: Buffer): void {
    this.blobs.push(decodeBatchBlob(bytes));
    this.state = 'key';
  }
}
