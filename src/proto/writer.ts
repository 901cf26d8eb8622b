// Minimal protobuf writer with proto3 implicit-presence semantics: scalar
// fields holding their default value are omitted, exactly like prost. That
// matters because Directory digests are hashes of these bytes.

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

export class ProtoWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initialSize = 64) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  private varint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`cannot encode ${value} as an unsigned varint`);
    }
    this.reserve(10);
    while (value > 0x7f) {
      this.buf[this.pos++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.buf[this.pos++] = value;
  }

  private tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  private rawBytes(bytes: Uint8Array): void {
    this.varint(bytes.length);
    this.reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** A bytes field; omitted when empty unless `always` (oneof members). */
  bytes(field: number, value: Uint8Array | undefined, always = false): this {
    if (value === undefined || (value.length === 0 && !always)) return this;
    this.tag(field, WIRE_LEN);
    this.rawBytes(value);
    return this;
  }

  string(field: number, value: string | undefined): this {
    if (!value) return this;
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  uint64(field: number, value: number | undefined): this {
    if (!value) return this;
    this.tag(field, WIRE_VARINT);
    this.varint(value);
    return this;
  }

  bool(field: number, value: boolean | undefined): this {
    if (!value) return this;
    this.tag(field, WIRE_VARINT);
    this.varint(1);
    return this;
  }

  /** An embedded message; written whenever present, even if it encodes to nothing. */
  message<T>(field: number, value: T | undefined, encode: (w: ProtoWriter, v: T) => void): this {
    if (value === undefined) return this;
    const inner = new ProtoWriter();
    encode(inner, value);
    this.tag(field, WIRE_LEN);
    this.rawBytes(inner.finish());
    return this;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

export function encodeWith<T>(encode: (w: ProtoWriter, v: T) => void, value: T): Buffer {
  const w = new ProtoWriter();
  encode(w, value);
  return w.finish();
}
