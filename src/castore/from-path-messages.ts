// Messages of nixcastore.v1.BlobFromPathService (protos/nixcastore/v1/blob_from_path.proto).
import { ProtoWriter } from '../proto/writer.js';
import { readFields, expectLen, expectVarint } from '../proto/reader.js';
import type { Codec } from './messages.js';

export interface PutFromPathRequest {
  /** Empty in the probe. */
  digest: Uint8Array;
  size: number;
  path: Uint8Array;
}
export interface PutFromPathResponse {
  digest: Uint8Array;
  roots: string[];
}

/** The empty request: a client asking whether the service is there, and where it reads. */
export const isProbe = (m: PutFromPathRequest): boolean => m.digest.length === 0 && m.path.length === 0;

export const PutFromPathRequestCodec: Codec<PutFromPathRequest> = {
  encode: (m) => new ProtoWriter(m.path.length + 64).bytes(1, m.digest).uint64(2, m.size).bytes(3, m.path).finish(),
  decode: (buf) => {
    const m: PutFromPathRequest = { digest: Buffer.alloc(0), size: 0, path: Buffer.alloc(0) };
    for (const f of readFields(buf)) {
      if (f.field === 1) m.digest = expectLen(f);
      else if (f.field === 2) m.size = expectVarint(f);
      else if (f.field === 3) m.path = expectLen(f);
    }
    return m;
  },
};

export const PutFromPathResponseCodec: Codec<PutFromPathResponse> = {
  encode: (m) => {
    const w = new ProtoWriter().bytes(1, m.digest);
    for (const r of m.roots) w.string(2, r);
    return w.finish();
  },
  decode: (buf) => {
    const m: PutFromPathResponse = { digest: Buffer.alloc(0), roots: [] };
    for (const f of readFields(buf)) {
      if (f.field === 1) m.digest = Buffer.from(expectLen(f));
      else if (f.field === 2) m.roots.push(expectLen(f).toString('utf8'));
    }
    return m;
  },
};

/** A store that reads a client's files itself (a daemon on the same machine). */
export interface BlobsFromPath {
  /** Directories below which it reads files; a file elsewhere is sent as bytes. */
  readonly roots: string[];
  /** Stores the file's bytes as a blob; resolves with the digest stored once durable. */
  put(digest: Uint8Array, size: number, path: string | Uint8Array): Promise<Buffer>;
}
