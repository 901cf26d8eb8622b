// Minimal protobuf reader. Unknown fields are skipped (prost drops them too),
// malformed input throws ProtoDecodeError.

export class ProtoDecodeError extends Error {
  override name = 'ProtoDecodeError';
}

export type Field =
  | { field: number; wireType: 0; value: number }
  | { field: number; wireType: 2; value: Buffer }
  | { field: number; wireType: 1 | 5; value: null };

export function* readFields(buf: Buffer): Generator<Field> {
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) throw new ProtoDecodeError('truncated varint');
      const b = buf[pos++];
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
  };
  while (pos < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    if (field === 0) throw new ProtoDecodeError('field number 0');
    switch (wireType) {
      case 0:
        yield { field, wireType, value: varint() };
        break;
      case 2: {
        const len = varint();
        if (pos + len > buf.length) throw new ProtoDecodeError(`field ${field}: length ${len} runs past the end`);
        yield { field, wireType, value: buf.subarray(pos, pos + len) };
        pos += len;
        break;
      }
      case 1:
      case 5: {
        const len = wireType === 1 ? 8 : 4;
        if (pos + len > buf.length) throw new ProtoDecodeError(`field ${field}: truncated fixed value`);
        pos += len;
        yield { field, wireType, value: null };
        break;
      }
      default:
        throw new ProtoDecodeError(`field ${field}: unsupported wire type ${wireType}`);
    }
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
