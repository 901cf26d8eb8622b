// Messages of nixcastore.v1.BlobBatchService (protos/nixcastore/v1/
// blob_batch.proto). A Put request carries megabytes of blobs: it is
// sized first and written into one buffer, not grown by doubling.
import { readFields, expectLen, expectVarint, ProtoDecodeError } from '../proto/reader.js';
import type { Codec } from './messages.js';

export interface HasBlobsRequest {
  digests: Uint8Array[];
}
export interface HasBlobsResponse {
  present: boolean[];
  /** The largest encoded PutBlobsRequest the server takes; 0: not said. */
  maxPutBytes: number;
}
export interface BatchBlob {
  digest: Uint8Array;
  data: Uint8Array;
}
export interface PutBlobsRequest {
  blobs: BatchBlob[];
}
export type PutBlobsResponse = Record<string, never>;

const varintLength = (v: number): number => {
  let n = 1;
  while (v > 0x7f) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
};

function writeVarint(out: Buffer, pos: number, v: number): number {
  while (v > 0x7f) {
    out[pos++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[pos++] = v;
  return pos;
}

/** Bytes of a length-delimited field (tag 1 byte: fields 1–15) holding `len` bytes. */
const lenField = (len: number): number => 1 + varintLength(len) + len;

function writeLenField(out: Buffer, pos: number, tag: number, bytes: Uint8Array): number {
  out[pos++] = tag;
  pos = writeVarint(out, pos, bytes.length);
  out.set(bytes, pos);
  return pos + bytes.length;
}

// Field 1 and 2, wire type 2 (length-delimited); field 2, wire type 0 (varint).
const TAG_1_LEN = 0x0a;
const TAG_2_LEN = 0x12;
const TAG_2_VARINT = 0x10;

export const HasBlobsRequestCodec: Codec<HasBlobsRequest> = {
  encode: (m) => {
    let size = 0;
    for (const d of m.digests) size += lenField(d.length);
    const out = Buffer.allocUnsafe(size);
    let pos = 0;
    for (const d of m.digests) pos = writeLenField(out, pos, TAG_1_LEN, d);
    return out;
  },
  decode: (buf) => {
    const digests: Uint8Array[] = [];
    for (const slice of hasRequestSlices(buf, 4096)) for (const d of slice) digests.push(d);
    return { digests };
  },
};

/**
 * A HasBlobsRequest's digests, `size` at a time, decoded as they are taken:
 * a server looks up a maximum request (~123k digests) slice by slice
 * without holding an object per digest for the whole call. The usual shape
 * (tag 0x0a, a one-byte length) is sliced in a plain loop, far cheaper than
 * a generator per field; anything else is read generically. Throws
 * ProtoDecodeError (possibly after some slices) for malformed input.
 */
export function* hasRequestSlices(buf: Buffer, size: number): Generator<Uint8Array[]> {
  let pos = 0;
  let slice: Uint8Array[] = [];
  while (pos < buf.length) {
    if (buf[pos] === TAG_1_LEN && pos + 1 < buf.length && buf[pos + 1] < 0x80 && pos + 2 + buf[pos + 1] <= buf.length) {
      slice.push(buf.subarray(pos + 2, pos + 2 + buf[pos + 1]));
      pos += 2 + buf[pos + 1];
    } else {
      // Fields may come in any shape from here on: read the rest generically.
      for (const f of readFields(buf.subarray(pos))) {
        if (f.field === 1) slice.push(expectLen(f));
        if (slice.length === size) yield slice.splice(0);
      }
      pos = buf.length;
    }
    if (slice.length === size) {
      yield slice;
      slice = [];
    }
  }
  if (slice.length > 0) yield slice;
}

export const HasBlobsResponseCodec: Codec<HasBlobsResponse> = {
  // Packed, as proto3 writes repeated scalars: one byte per bool.
  encode: (m) => {
    const n = m.present.length;
    const max = m.maxPutBytes > 0 ? 1 + varintLength(m.maxPutBytes) : 0;
    const out = Buffer.allocUnsafe((n > 0 ? 1 + varintLength(n) + n : 0) + max);
    let pos = 0;
    if (n > 0) {
      out[pos++] = TAG_1_LEN;
      pos = writeVarint(out, pos, n);
      for (const p of m.present) out[pos++] = p ? 1 : 0;
    }
    if (max > 0) {
      out[pos++] = TAG_2_VARINT;
      writeVarint(out, pos, m.maxPutBytes);
    }
    return out;
  },
  // Parsers must take both forms of a repeated scalar: packed and one field each.
  decode: (buf) => {
    const m: HasBlobsResponse = { present: [], maxPutBytes: 0 };
    for (const f of readFields(buf)) {
      if (f.field === 1) {
        if (f.wireType === 0) m.present.push(f.value !== 0);
        else for (const g of readFields(packedAsVarints(expectLen(f)))) m.present.push(expectVarint(g) !== 0);
      } else if (f.field === 2) m.maxPutBytes = expectVarint(f);
    }
    return m;
  },
};

/** Blob data from this size on is a part of its own in putBlobsParts; smaller data is copied. */
const OWN_PART_FROM = 4096;

/**
 * A PutBlobsRequest as parts to write one after the other: field headers
 * and small blobs copied together, larger blobs' data as it is. The same
 * bytes as PutBlobsRequestCodec.encode, without copying megabytes.
 */
export function putBlobsParts(m: PutBlobsRequest): Uint8Array[] {
  let copied = 0;
  for (const b of m.blobs) {
    const len = blobLength(b);
    copied += 1 + varintLength(len) + len - (b.data.length >= OWN_PART_FROM ? b.data.length : 0);
  }
  const out = Buffer.allocUnsafe(copied);
  const parts: Uint8Array[] = [];
  let from = 0;
  let pos = 0;
  for (const b of m.blobs) {
    out[pos++] = TAG_1_LEN;
    pos = writeVarint(out, pos, blobLength(b));
    pos = writeLenField(out, pos, TAG_1_LEN, b.digest);
    if (b.data.length === 0) continue;
    if (b.data.length < OWN_PART_FROM) {
      pos = writeLenField(out, pos, TAG_2_LEN, b.data);
      continue;
    }
    out[pos++] = TAG_2_LEN;
    pos = writeVarint(out, pos, b.data.length);
    parts.push(out.subarray(from, pos), b.data);
    from = pos;
  }
  if (pos > from || parts.length === 0) parts.push(out.subarray(from, pos));
  return parts;
}

/** Re-reads packed varints as field-1 varints, so readFields' checks apply to them. */
function packedAsVarints(packed: Buffer): Buffer {
  const out = Buffer.allocUnsafe(packed.length * 2);
  let pos = 0;
  for (let i = 0; i < packed.length; i++) {
    if (i === 0 || packed[i - 1] < 0x80) out[pos++] = 0x08;
    out[pos++] = packed[i];
  }
  if (packed.length > 0 && packed[packed.length - 1] >= 0x80) throw new ProtoDecodeError('field 1: truncated packed varint');
  return out.subarray(0, pos);
}

export const PutBlobsRequestCodec: Codec<PutBlobsRequest> = {
  encode: (m) => {
    let size = 0;
    for (const b of m.blobs) size += lenField(blobLength(b));
    const out = Buffer.allocUnsafe(size);
    let pos = 0;
    for (const b of m.blobs) {
      out[pos++] = TAG_1_LEN;
      pos = writeVarint(out, pos, blobLength(b));
      pos = writeLenField(out, pos, TAG_1_LEN, b.digest);
      if (b.data.length > 0) pos = writeLenField(out, pos, TAG_2_LEN, b.data);
    }
    return out;
  },
  decode: (buf) => {
    const blobs: BatchBlob[] = [];
    for (const f of readFields(buf)) if (f.field === 1) blobs.push(decodeBatchBlob(expectLen(f)));
    return { blobs };
  },
};

/** One Blob of a PutBlobsRequest: views of `buf`, no copies. */
export function decodeBatchBlob(buf: Buffer): BatchBlob {
  const b: BatchBlob = { digest: EMPTY, data: EMPTY };
  for (const g of readFields(buf)) {
    if (g.field === 1) b.digest = expectLen(g);
    else if (g.field === 2) b.data = expectLen(g);
  }
  return b;
}

export const PutBlobsResponseCodec: Codec<PutBlobsResponse> = {
  encode: () => Buffer.alloc(0),
  decode: (buf) => {
    void [...readFields(buf)]; // still rejects malformed bytes
    return {};
  },
};

const EMPTY = Buffer.alloc(0);

/** Bytes of one encoded Blob message (an empty data field is left out). */
function blobLength(b: BatchBlob): number {
  return lenField(b.digest.length) + (b.data.length > 0 ? lenField(b.data.length) : 0);
}
