// Minimal protobuf reader. Unknown fields are skipped (prost drops them too),
// malformed input throws ProtoDecodeError.

export class ProtoDecodeError extends Error {
  override name = 'ProtoDecodeError';
}

export type Field =
  | { field: number; wireType: 0; value: number }
  | { field: number; wireType: 2; value: Buffer }
  | { field: number; wireType: 1 | 5; value: null };

/**
 * The fields of `buf` in order. One field object and one iterator result are
 * reused for every field: a field is valid until the next is read (a
 * generator allocated both per field, which for a large path's closure of
 * tens of thousands of entries was a daemon's largest source of garbage).
 */
export function readFields(buf: Buffer): IterableIterator<Field> {
  return new FieldIterator(buf);
}

class FieldIterator implements IterableIterator<Field> {
  private pos = 0;
  private readonly field = { field: 0, wireType: 0, value: null as unknown };
  private readonly result = { done: false, value: this.field as Field };

  constructor(private readonly buf: Buffer) {}

  [Symbol.iterator](): IterableIterator<Field> {
    return this;
  }

  next(): IteratorResult<Field> {
    const buf = this.buf;
    if (this.pos >= buf.length) return { done: true, value: undefined };
    const key = this.varint();
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    if (field === 0) throw new ProtoDecodeError('field number 0');
    let value: unknown;
    switch (wireType) {
      case 0:
        value = this.varint();
        break;
      case 2: {
        const len = this.varint();
        if (this.pos + len > buf.length) throw new ProtoDecodeError(`field ${field}: length ${len} runs past the end`);
        value = buf.subarray(this.pos, this.pos + len);
        this.pos += len;
        break;
      }
      case 1:
      case 5: {
        const len = wireType === 1 ? 8 : 4;
        if (this.pos + len > buf.length) throw new ProtoDecodeError(`field ${field}: truncated fixed value`);
        this.pos += len;
        value = null;
        break;
      }
      default:
        throw new ProtoDecodeError(`field ${field}: unsupported wire type ${wireType}`);
    }
    this.field.field = field;
    this.field.wireType = wireType;
    this.field.value = value;
    return this.result;
  }

  private varint(): number {
    const buf = this.buf;
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= buf.length) throw new ProtoDecodeError('truncated varint');
      const b = buf[this.pos++];
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (!Number.isSafeInteger(result)) {
          throw new ProtoDecodeError('integer larger than 2^53 is not supported');
        }
        return result;
      }
      mul *= 0x80;
    }
    throw new ProtoDecodeError('varint longer than 10 bytes');
  }
}

/** Checks that a known field arrived with the wire type its schema says. */
export function expectLen(f: Field): Buffer {
  if (f.wireType !== 2) throw new ProtoDecodeError(`field ${f.field}: expected a length-delimited value`);
  return f.value;
}

export function expectVarint(f: Field): number {
  if (f.wireType !== 0) throw new ProtoDecodeError(`field ${f.field}: expected a varint`);
  return f.value;
}
