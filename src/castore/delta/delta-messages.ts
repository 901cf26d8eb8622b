// Messages of nixcastore.v1.BlobDeltaService (protos/nixcastore/v1/blob_delta.proto).
import { ProtoWriter } from '../../proto/writer.js';
import { readFields, expectLen, expectVarint, ProtoDecodeError } from '../../proto/reader.js';
import { B3_LEN } from '../digest.js';
import type { Codec } from '../messages.js';
import type { Chunk } from './chunking.js';

export interface FindBaseRequest {
  hooks: Uint8Array[];
}
export interface FindBaseResponse {
  /** Absent: no base. */
  base?: Buffer;
  baseSize: number;
  chunks: Chunk[];
}
/** The first part names the blob; each later one is a range of the base or literal bytes. */
export type DeltaPart =
  | { kind: 'header'; digest: Uint8Array; size: number; base: Uint8Array }
  | { kind: 'copy'; offset: number; length: number }
  | { kind: 'data'; data: Uint8Array };
export interface PutDeltaResponse {
  digest: Uint8Array;
}

/** A chunk in FindBaseResponse.chunks: its length (uint32, big-endian) and BLAKE3. */
const CHUNK_RECORD = 4 + B3_LEN;

function concat(parts: Uint8Array[], each: number, what: string): Buffer {
  const out = Buffer.allocUnsafe(parts.length * each);
  parts.forEach((p, i) => {
    if (p.length !== each) throw new ProtoDecodeError(`${what} ${i} is ${p.length} bytes, not ${each}`);
    out.set(p, i * each);
  });
  return out;
}

function split(buf: Buffer, each: number, what: string): Buffer[] {
  if (buf.length % each !== 0) throw new ProtoDecodeError(`${what}: ${buf.length} bytes is not a whole number of ${each}-byte entries`);
  const out: Buffer[] = [];
  for (let at = 0; at < buf.length; at += each) out.push(buf.subarray(at, at + each));
  return out;
}

export const FindBaseRequestCodec: Codec<FindBaseRequest> = {
  encode: (m) => new ProtoWriter().bytes(1, concat(m.hooks, B3_LEN, 'hook')).finish(),
  decode: (buf) => {
    let hooks: Buffer[] = [];
    for (const f of readFields(buf)) if (f.field === 1) hooks = split(expectLen(f), B3_LEN, 'hooks');
    return { hooks };
  },
};

export const FindBaseResponseCodec: Codec<FindBaseResponse> = {
  encode: (m) => {
    const chunks = Buffer.allocUnsafe(m.chunks.length * CHUNK_RECORD);
    m.chunks.forEach((c, i) => {
      chunks.writeUInt32BE(c.length, i * CHUNK_RECORD);
      chunks.set(c.digest, i * CHUNK_RECORD + 4);
    });
    return new ProtoWriter().bytes(1, m.base).uint64(2, m.baseSize).bytes(3, chunks).finish();
  },
  decode: (buf) => {
    const m: FindBaseResponse = { baseSize: 0, chunks: [] };
    for (const f of readFields(buf)) {
      if (f.field === 1) m.base = Buffer.from(expectLen(f));
      else if (f.field === 2) m.baseSize = expectVarint(f);
      else if (f.field === 3) m.chunks = split(expectLen(f), CHUNK_RECORD, 'chunks').map((r) => ({ length: r.readUInt32BE(0), digest: Buffer.from(r.subarray(4)) }));
    }
    return m;
  },
};

export const DeltaPartCodec: Codec<DeltaPart> = {
  encode: (m) => {
    const w = new ProtoWriter(m.kind === 'data' ? m.data.length + 8 : 96);
    if (m.kind === 'header') w.bytes(1, m.digest).uint64(2, m.size).bytes(3, m.base);
    else if (m.kind === 'copy') w.uint64(4, m.offset).uint64(5, m.length);
    else w.bytes(6, m.data, true);
    return w.finish();
  },
  decode: (buf) => {
    let digest: Buffer | undefined;
    let base: Buffer | undefined;
    let data: Buffer | undefined;
    let size = 0;
    let offset = 0;
    let length = 0;
    for (const f of readFields(buf)) {
      if (f.field === 1) digest = expectLen(f);
      else if (f.field === 2) size = expectVarint(f);
      else if (f.field === 3) base = expectLen(f);
      else if (f.field === 4) offset = expectVarint(f);
      else if (f.field === 5) length = expectVarint(f);
      else if (f.field === 6) data = expectLen(f);
    }
    const kinds = Number(digest !== undefined) + Number(length > 0) + Number(data !== undefined);
    if (kinds !== 1) throw new ProtoDecodeError('a DeltaPart is one of: a header (digest, size, base), a copy (copy_length > 0) or data');
    if (digest) return { kind: 'header', digest, size, base: base ?? Buffer.alloc(0) };
    if (data) return { kind: 'data', data };
    return { kind: 'copy', offset, length };
  },
};

export const PutDeltaResponseCodec: Codec<PutDeltaResponse> = {
  encode: (m) => new ProtoWriter().bytes(1, m.digest).finish(),
  decode: (buf) => {
    let digest: Uint8Array = Buffer.alloc(0);
    for (const f of readFields(buf)) if (f.field === 1) digest = Buffer.from(expectLen(f));
    return { digest };
  },
};

/** A similar blob the store has, with its content-defined chunks. */
export interface DeltaBase {
  base: Buffer;
  baseSize: number;
  chunks: Chunk[];
}

export interface DeltaHeader {
  digest: Uint8Array;
  size: number;
  base: Uint8Array;
}

/** After the header: a range of the base, or bytes of the blob itself. */
export type DeltaOp = { offset: number; length: number } | { data: Uint8Array };

/** Delta uploads as a client sees them (DeltaStore in-process, a daemon's BlobDeltaService over gRPC). */
export interface BlobDeltas {
  /** A similar blob the store has, by the new blob's hooks, with its chunks; undefined if none. */
  findBase(hooks: Uint8Array[]): Promise<DeltaBase | undefined>;
  /** Stores the blob `header` announces from ranges of its base and literal bytes; resolves to its digest. */
  putDelta(header: DeltaHeader, ops: AsyncIterable<DeltaOp>): Promise<Buffer>;
}
