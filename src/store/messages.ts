// tvix.store.v1 messages: TypeScript shapes and protobuf codecs, field
// numbers as in protos/tvix/store/protos/*.proto.
import { ProtoWriter, encodeWith } from '../proto/writer.js';
import { readFields, expectLen, expectVarint, ProtoDecodeError } from '../proto/reader.js';
import { readNode, writeNode, type Node, type Codec } from '../castore/messages.js';

export interface Signature {
  name: string;
  data: Uint8Array;
}
export interface StorePathRef {
  /** Name part of the store path (for a deriver: without `.drv`). */
  name: string;
  digest: Uint8Array;
}
export interface ContentAddress {
  /** NARInfo.CA.Hash enum value. */
  type: number;
  digest: Uint8Array;
}
export interface NarInfo {
  narSize: number;
  narSha256: Uint8Array;
  signatures: Signature[];
  referenceNames: string[];
  deriver?: StorePathRef;
  ca?: ContentAddress;
}
export interface PathInfo {
  node?: Node;
  references: Uint8Array[];
  narinfo?: NarInfo;
}
export interface GetPathInfoRequest {
  /** The `by_what` oneof: undefined when unset. */
  byOutputHash: Uint8Array | undefined;
}
export interface CalculateNarResponse {
  narSize: number;
  narSha256: Uint8Array;
}

const EMPTY = new Uint8Array(0);
// `string` fields must be valid UTF-8 (as prost requires): a lossy decode
// would store U+FFFD instead of what the client sent.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8 = (b: Buffer): string => {
  try {
    return UTF8.decode(b);
  } catch {
    throw new ProtoDecodeError('a string field is not valid UTF-8');
  }
};

const writeNarInfo = (w: ProtoWriter, n: NarInfo): void => {
  w.uint64(1, n.narSize).bytes(2, n.narSha256);
  for (const s of n.signatures) w.message(3, s, (sw, sv) => sw.string(1, sv.name).bytes(2, sv.data));
  for (const r of n.referenceNames) w.bytes(4, Buffer.from(r, 'utf8'), true);
  w.message(5, n.deriver, (dw, dv) => dw.string(1, dv.name).bytes(2, dv.digest));
  w.message(6, n.ca, (cw, cv) => cw.uint64(1, cv.type).bytes(2, cv.digest));
};

const writePathInfo = (w: ProtoWriter, p: PathInfo): void => {
  w.message(1, p.node, writeNode);
  for (const r of p.references) w.bytes(2, r, true);
  w.message(3, p.narinfo, writeNarInfo);
};

function readNarInfo(buf: Buffer): NarInfo {
  const n: NarInfo = { narSize: 0, narSha256: EMPTY, signatures: [], referenceNames: [] };
  for (const f of readFields(buf)) {
    if (f.field === 1) n.narSize = expectVarint(f);
    else if (f.field === 2) n.narSha256 = expectLen(f);
    else if (f.field === 3) {
      const s: Signature = { name: '', data: EMPTY };
      for (const g of readFields(expectLen(f))) {
        if (g.field === 1) s.name = utf8(expectLen(g));
        else if (g.field === 2) s.data = expectLen(g);
      }
      n.signatures.push(s);
    } else if (f.field === 4) n.referenceNames.push(utf8(expectLen(f)));
    else if (f.field === 5) {
      const d: StorePathRef = { name: '', digest: EMPTY };
      for (const g of readFields(expectLen(f))) {
        if (g.field === 1) d.name = utf8(expectLen(g));
        else if (g.field === 2) d.digest = expectLen(g);
      }
      n.deriver = d;
    } else if (f.field === 6) {
      const c: ContentAddress = { type: 0, digest: EMPTY };
      for (const g of readFields(expectLen(f))) {
        if (g.field === 1) c.type = expectVarint(g);
        else if (g.field === 2) c.digest = expectLen(g);
      }
      n.ca = c;
    }
  }
  return n;
}

export function readPathInfo(buf: Buffer): PathInfo {
  const p: PathInfo = { references: [] };
  for (const f of readFields(buf)) {
    if (f.field === 1) p.node = readNode(expectLen(f));
    else if (f.field === 2) p.references.push(expectLen(f));
    else if (f.field === 3) p.narinfo = readNarInfo(expectLen(f));
  }
  return p;
}

export const PathInfoCodec: Codec<PathInfo> = {
  encode: (p) => encodeWith(writePathInfo, p),
  decode: readPathInfo,
};

export const GetPathInfoRequestCodec: Codec<GetPathInfoRequest> = {
  encode: (m) => encodeWith((w, v: GetPathInfoRequest) => w.bytes(1, v.byOutputHash, true), m),
  decode: (buf) => {
    const m: GetPathInfoRequest = { byOutputHash: undefined };
    for (const f of readFields(buf)) if (f.field === 1) m.byOutputHash = expectLen(f);
    return m;
  },
};

export const ListPathInfoRequestCodec: Codec<Record<string, never>> = {
  encode: () => Buffer.alloc(0),
  decode: (buf) => {
    for (const _ of readFields(buf)); // still reject malformed bytes
    return {};
  },
};

export const CalculateNarResponseCodec: Codec<CalculateNarResponse> = {
  encode: (m) => encodeWith((w, v: CalculateNarResponse) => w.uint64(1, v.narSize).bytes(2, v.narSha256), m),
  decode: (buf) => {
    const m: CalculateNarResponse = { narSize: 0, narSha256: EMPTY };
    for (const f of readFields(buf)) {
      if (f.field === 1) m.narSize = expectVarint(f);
      else if (f.field === 2) m.narSha256 = expectLen(f);
    }
    return m;
  },
};
