// tvix.castore.v1 messages: TypeScript shapes and their protobuf codecs.
// Field numbers follow protos/tvix/castore/protos/*.proto (a test checks
// that both agree).
import { ProtoWriter, encodeWith } from '../proto/writer.js';
import { readFields, expectLen, expectVarint, ProtoDecodeError } from '../proto/reader.js';

export interface DirectoryNode {
  name: Uint8Array;
  digest: Uint8Array;
  size: number;
}
export interface FileNode {
  name: Uint8Array;
  digest: Uint8Array;
  size: number;
  executable: boolean;
}
export interface SymlinkNode {
  name: Uint8Array;
  target: Uint8Array;
}
export interface Directory {
  directories: DirectoryNode[];
  files: FileNode[];
  symlinks: SymlinkNode[];
}
/** The `Node` oneof; `undefined` where the oneof is unset. */
export type Node =
  | ({ type: 'directory' } & DirectoryNode)
  | ({ type: 'file' } & FileNode)
  | ({ type: 'symlink' } & SymlinkNode);

export interface ChunkMeta {
  digest: Uint8Array;
  size: number;
}
export interface StatBlobRequest {
  digest: Uint8Array;
  sendChunks: boolean;
  sendBao: boolean;
}
export interface StatBlobResponse {
  chunks: ChunkMeta[];
  bao: Uint8Array;
}
export interface ReadBlobRequest {
  digest: Uint8Array;
}
export interface BlobChunk {
  data: Uint8Array;
}
export interface PutBlobResponse {
  digest: Uint8Array;
}
export interface GetDirectoryRequest {
  /** The `by_what` oneof: undefined when unset. */
  digest: Uint8Array | undefined;
  recursive: boolean;
}
export interface PutDirectoryResponse {
  rootDigest: Uint8Array;
}

const EMPTY = new Uint8Array(0);

export const writeDirectoryNode = (w: ProtoWriter, n: DirectoryNode): void => {
  w.bytes(1, n.name).bytes(2, n.digest).uint64(3, n.size);
};
export const writeFileNode = (w: ProtoWriter, n: FileNode): void => {
  w.bytes(1, n.name).bytes(2, n.digest).uint64(3, n.size).bool(4, n.executable);
};
export const writeSymlinkNode = (w: ProtoWriter, n: SymlinkNode): void => {
  w.bytes(1, n.name).bytes(2, n.target);
};
export const writeDirectory = (w: ProtoWriter, d: Directory): void => {
  for (const n of d.directories) w.message(1, n, writeDirectoryNode);
  for (const n of d.files) w.message(2, n, writeFileNode);
  for (const n of d.symlinks) w.message(3, n, writeSymlinkNode);
};
export const writeNode = (w: ProtoWriter, n: Node): void => {
  if (n.type === 'directory') w.message(1, n, writeDirectoryNode);
  else if (n.type === 'file') w.message(2, n, writeFileNode);
  else w.message(3, n, writeSymlinkNode);
};

export function readDirectoryNode(buf: Buffer): DirectoryNode {
  const n: DirectoryNode = { name: EMPTY, digest: EMPTY, size: 0 };
  for (const f of readFields(buf)) {
    if (f.field === 1) n.name = expectLen(f);
    else if (f.field === 2) n.digest = expectLen(f);
    else if (f.field === 3) n.size = expectVarint(f);
  }
  return n;
}
export function readFileNode(buf: Buffer): FileNode {
  const n: FileNode = { name: EMPTY, digest: EMPTY, size: 0, executable: false };
  for (const f of readFields(buf)) {
    if (f.field === 1) n.name = expectLen(f);
    else if (f.field === 2) n.digest = expectLen(f);
    else if (f.field === 3) n.size = expectVarint(f);
    else if (f.field === 4) n.executable = expectVarint(f) !== 0;
  }
  return n;
}
export function readSymlinkNode(buf: Buffer): SymlinkNode {
  const n: SymlinkNode = { name: EMPTY, target: EMPTY };
  for (const f of readFields(buf)) {
    if (f.field === 1) n.name = expectLen(f);
    else if (f.field === 2) n.target = expectLen(f);
  }
  return n;
}
export function readDirectory(buf: Buffer): Directory {
  const d: Directory = { directories: [], files: [], symlinks: [] };
  for (const f of readFields(buf)) {
    if (f.field === 1) d.directories.push(readDirectoryNode(expectLen(f)));
    else if (f.field === 2) d.files.push(readFileNode(expectLen(f)));
    else if (f.field === 3) d.symlinks.push(readSymlinkNode(expectLen(f)));
  }
  return d;
}
/** Last oneof member wins, as in every protobuf implementation. */
export function readNode(buf: Buffer): Node | undefined {
  let node: Node | undefined;
  for (const f of readFields(buf)) {
    if (f.field === 1) node = { type: 'directory', ...readDirectoryNode(expectLen(f)) };
    else if (f.field === 2) node = { type: 'file', ...readFileNode(expectLen(f)) };
    else if (f.field === 3) node = { type: 'symlink', ...readSymlinkNode(expectLen(f)) };
  }
  return node;
}

/** Encoder/decoder pair used for gRPC (de)serialisation. */
export interface Codec<T> {
  encode(value: T): Buffer;
  decode(buf: Buffer): T;
}

function codec<T>(write: (w: ProtoWriter, v: T) => void, read: (b: Buffer) => T): Codec<T> {
  return { encode: (v) => encodeWith(write, v), decode: read };
}

export const DirectoryCodec = codec(writeDirectory, readDirectory);

/**
 * The Node message on its own (the CalculateNAR request), boxed: grpc-js
 * treats a falsy request as "no message", and an unset oneof must still
 * reach the handler.
 */
export interface NodeMessage {
  node: Node | undefined;
}
export const NodeMessageCodec: Codec<NodeMessage> = {
  encode: (m) => (m.node ? encodeWith(writeNode, m.node) : Buffer.alloc(0)),
  decode: (buf) => ({ node: readNode(buf) }),
};

export const StatBlobRequestCodec = codec<StatBlobRequest>(
  (w, m) => w.bytes(1, m.digest).bool(2, m.sendChunks).bool(3, m.sendBao),
  (buf) => {
    const m: StatBlobRequest = { digest: EMPTY, sendChunks: false, sendBao: false };
    for (const f of readFields(buf)) {
      if (f.field === 1) m.digest = expectLen(f);
      else if (f.field === 2) m.sendChunks = expectVarint(f) !== 0;
      else if (f.field === 3) m.sendBao = expectVarint(f) !== 0;
    }
    return m;
  },
);

export const StatBlobResponseCodec = codec<StatBlobResponse>(
  (w, m) => {
    for (const c of m.chunks) w.message(2, c, (cw, cm) => cw.bytes(1, cm.digest).uint64(2, cm.size));
    w.bytes(3, m.bao);
  },
  (buf) => {
    const m: StatBlobResponse = { chunks: [], bao: EMPTY };
    for (const f of readFields(buf)) {
      if (f.field === 2) {
        const c: ChunkMeta = { digest: EMPTY, size: 0 };
        for (const g of readFields(expectLen(f))) {
          if (g.field === 1) c.digest = expectLen(g);
          else if (g.field === 2) c.size = expectVarint(g);
        }
        m.chunks.push(c);
      } else if (f.field === 3) m.bao = expectLen(f);
    }
    return m;
  },
);

function singleBytes<K extends string>(key: K): Codec<Record<K, Uint8Array>> {
  return codec<Record<K, Uint8Array>>(
    (w, m) => w.bytes(1, m[key]),
    (buf) => {
      let v: Uint8Array = EMPTY;
      for (const f of readFields(buf)) if (f.field === 1) v = expectLen(f);
      return { [key]: v } as Record<K, Uint8Array>;
    },
  );
}

export const ReadBlobRequestCodec: Codec<ReadBlobRequest> = singleBytes('digest');
export const PutBlobResponseCodec: Codec<PutBlobResponse> = singleBytes('digest');
export const PutDirectoryResponseCodec: Codec<PutDirectoryResponse> = singleBytes('rootDigest');

// BlobChunk is the hot path of every upload: avoid the generic machinery.
export const BlobChunkCodec: Codec<BlobChunk> = {
  encode: (m) => {
    const len = m.data.length;
    if (len === 0) return Buffer.alloc(0);
    let header = 1;
    for (let v = len; v > 0x7f; v = Math.floor(v / 0x80)) header++;
    const out = Buffer.allocUnsafe(1 + header + len);
    out[0] = 0x0a;
    let pos = 1;
    let v = len;
    while (v > 0x7f) {
      out[pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    out[pos++] = v;
    out.set(m.data, pos);
    return out;
  },
  decode: (buf) => {
    let data: Uint8Array = EMPTY;
    for (const f of readFields(buf)) if (f.field === 1) data = expectLen(f);
    return { data };
  },
};

export const GetDirectoryRequestCodec = codec<GetDirectoryRequest>(
  (w, m) => w.bytes(1, m.digest, true).bool(2, m.recursive),
  (buf) => {
    const m: GetDirectoryRequest = { digest: undefined, recursive: false };
    for (const f of readFields(buf)) {
      if (f.field === 1) m.digest = expectLen(f);
      else if (f.field === 2) m.recursive = expectVarint(f) !== 0;
    }
    return m;
  },
);

export { ProtoDecodeError };
