// An independent oracle for the wire fuzzer, written from the spec and
// deliberately sharing no code with src/ (no src/proto, no
// src/castore/directory.ts validateDirectory, no src/store/validate-pathinfo.ts):
//
//  * a schema-driven protobuf decoder and a canonical (prost-style) encoder;
//  * nixbase32 and store-path basename rules (store.md §1–2);
//  * Directory rules (castore.md §3), Put-stream rules (wire.md §5.2) and
//    PathInfo rules (store.md §3.3, HEAD column).
//
// Decoding follows protobuf/prost, with these documented choices, which the
// daemon shares:
//  * any varint (key, length or value) ≥ 2^53 is refused (JavaScript numbers;
//    prost would accept up to 2^64-1), and so is a size sum 2n+S ≥ 2^53;
//  * group wire types (3, 4) are refused, as are 6 and 7;
//  * a singular message field or oneof member sent twice: the last one wins
//    (prost would merge two occurrences of the same message);
//  * `string` fields must be valid UTF-8 (as in prost).
import { blake3 } from '../../src/castore/digest.js';

export class Malformed extends Error {}

const MAX_SAFE = 2 ** 53 - 1;

// ---------------------------------------------------------------- decoding

export type Kind = 'bytes' | 'string' | 'varint' | { msg: Schema };
export interface Schema {
  [field: number]: Kind;
}
export type Value = Buffer | number | Decoded;
/** Fields in wire order (order matters for oneofs and "last wins"). */
export type Decoded = [number, Value][];

function readVarint(buf: Buffer, pos: number): [number, number] {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Malformed('truncated varint');
    const b = buf[pos++];
    result += (b & 0x7f) * mul;
    if (b < 0x80) {
      if (result > MAX_SAFE) throw new Malformed('varint ≥ 2^53');
      return [result, pos];
    }
    mul *= 128;
  }
  throw new Malformed('varint longer than 10 bytes');
}

export function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}

/** Decodes `buf` against `schema`; unknown fields are skipped; throws Malformed. */
export function decode(buf: Buffer, schema: Schema): Decoded {
  const out: Decoded = [];
  let pos = 0;
  while (pos < buf.length) {
    let key: number;
    [key, pos] = readVarint(buf, pos);
    const field = Math.floor(key / 8);
    const wt = key % 8;
    if (field === 0) throw new Malformed('field 0');
    let value: Buffer | number;
    if (wt === 0) [value, pos] = readVarint(buf, pos);
    else if (wt === 2) {
      let len: number;
      [len, pos] = readVarint(buf, pos);
      if (pos + len > buf.length) throw new Malformed('length past the end');
      value = buf.subarray(pos, pos + len);
      pos += len;
    } else if (wt === 1 || wt === 5) {
      const n = wt === 1 ? 8 : 4;
      if (pos + n > buf.length) throw new Malformed('truncated fixed value');
      pos += n;
      value = -1;
    } else throw new Malformed(`wire type ${wt}`);
    const kind = schema[field];
    if (kind === undefined) continue;
    if (kind === 'varint') {
      if (wt !== 0) throw new Malformed(`field ${field}: wire type ${wt} for a varint`);
      out.push([field, value as number]);
    } else {
      if (wt !== 2) throw new Malformed(`field ${field}: wire type ${wt} for a length-delimited field`);
      const b = value as Buffer;
      if (kind === 'string' && !isUtf8(b)) throw new Malformed(`field ${field}: invalid UTF-8`);
      out.push([field, typeof kind === 'object' ? decode(b, kind.msg) : b]);
    }
  }
  return out;
}

const all = <T extends Value>(d: Decoded, f: number): T[] => d.filter(([k]) => k === f).map(([, v]) => v as T);
const last = <T extends Value>(d: Decoded, f: number): T | undefined => all<T>(d, f).at(-1);

// ----------------------------------------------------------------- schemas

const DIR_NODE: Schema = { 1: 'bytes', 2: 'bytes', 3: 'varint' };
const FILE_NODE: Schema = { 1: 'bytes', 2: 'bytes', 3: 'varint', 4: 'varint' };
const SYMLINK_NODE: Schema = { 1: 'bytes', 2: 'bytes' };
export const SCHEMAS = {
  Directory: { 1: { msg: DIR_NODE }, 2: { msg: FILE_NODE }, 3: { msg: SYMLINK_NODE } } as Schema,
  Node: { 1: { msg: DIR_NODE }, 2: { msg: FILE_NODE }, 3: { msg: SYMLINK_NODE } } as Schema,
  StatBlobRequest: { 1: 'bytes', 2: 'varint', 3: 'varint' } as Schema,
  ReadBlobRequest: { 1: 'bytes' } as Schema,
  BlobChunk: { 1: 'bytes' } as Schema,
  GetDirectoryRequest: { 1: 'bytes', 2: 'varint' } as Schema,
  GetPathInfoRequest: { 1: 'bytes' } as Schema,
  ListPathInfoRequest: {} as Schema,
  PutDirectoryResponse: { 1: 'bytes' } as Schema,
  PathInfo: {} as Schema,
};
const SIGNATURE: Schema = { 1: 'string', 2: 'bytes' };
const STORE_PATH: Schema = { 1: 'string', 2: 'bytes' };
const CA: Schema = { 1: 'varint', 2: 'bytes' };
const NARINFO: Schema = { 1: 'varint', 2: 'bytes', 3: { msg: SIGNATURE }, 4: 'string', 5: { msg: STORE_PATH }, 6: { msg: CA } };
SCHEMAS.PathInfo = { 1: { msg: SCHEMAS.Node }, 2: 'bytes', 3: { msg: NARINFO } };

// ------------------------------------------------------------ typed shapes

export interface ODirNode {
  name: Buffer;
  digest: Buffer;
  size: number;
}
export interface OFileNode extends ODirNode {
  executable: boolean;
}
export interface OSymlinkNode {
  name: Buffer;
  target: Buffer;
}
export interface ODirectory {
  directories: ODirNode[];
  files: OFileNode[];
  symlinks: OSymlinkNode[];
}
export type ONode = ({ type: 'directory' } & ODirNode) | ({ type: 'file' } & OFileNode) | ({ type: 'symlink' } & OSymlinkNode);
export interface OSignature {
  name: Buffer;
  data: Buffer;
}
export interface OStorePath {
  name: Buffer;
  digest: Buffer;
}
export interface OCA {
  type: number;
  digest: Buffer;
}
export interface ONarInfo {
  narSize: number;
  narSha256: Buffer;
  signatures: OSignature[];
  referenceNames: Buffer[];
  deriver?: OStorePath;
  ca?: OCA;
}
export interface OPathInfo {
  node?: ONode;
  references: Buffer[];
  narinfo?: ONarInfo;
}

const EMPTY = Buffer.alloc(0);
const bytesOf = (d: Decoded, f: number) => last<Buffer>(d, f) ?? EMPTY;
const numOf = (d: Decoded, f: number) => last<number>(d, f) ?? 0;

const dirNode = (d: Decoded): ODirNode => ({ name: bytesOf(d, 1), digest: bytesOf(d, 2), size: numOf(d, 3) });
const fileNode = (d: Decoded): OFileNode => ({ ...dirNode(d), executable: numOf(d, 4) !== 0 });
const symlinkNode = (d: Decoded): OSymlinkNode => ({ name: bytesOf(d, 1), target: bytesOf(d, 2) });

export function decodeDirectory(buf: Buffer): ODirectory {
  const d = decode(buf, SCHEMAS.Directory);
  return {
    directories: all<Decoded>(d, 1).map(dirNode),
    files: all<Decoded>(d, 2).map(fileNode),
    symlinks: all<Decoded>(d, 3).map(symlinkNode),
  };
}

function nodeOf(d: Decoded): ONode | undefined {
  const member = d.filter(([f]) => f >= 1 && f <= 3).at(-1);
  if (!member) return undefined;
  const [f, v] = member as [number, Decoded];
  if (f === 1) return { type: 'directory', ...dirNode(v) };
  if (f === 2) return { type: 'file', ...fileNode(v) };
  return { type: 'symlink', ...symlinkNode(v) };
}

export function decodePathInfo(buf: Buffer): OPathInfo {
  const d = decode(buf, SCHEMAS.PathInfo);
  const node = last<Decoded>(d, 1);
  const ni = last<Decoded>(d, 3);
  let narinfo: ONarInfo | undefined;
  if (ni) {
    const der = last<Decoded>(ni, 5);
    const ca = last<Decoded>(ni, 6);
    narinfo = {
      narSize: numOf(ni, 1),
      narSha256: bytesOf(ni, 2),
      signatures: all<Decoded>(ni, 3).map((s) => ({ name: bytesOf(s, 1), data: bytesOf(s, 2) })),
      referenceNames: all<Buffer>(ni, 4),
      deriver: der && { name: bytesOf(der, 1), digest: bytesOf(der, 2) },
      ca: ca && { type: numOf(ca, 1), digest: bytesOf(ca, 2) },
    };
  }
  return { node: node && nodeOf(node), references: all<Buffer>(d, 2), narinfo };
}

// ------------------------------------------------------- canonical encoder

/** Encoder options for producing *non*-canonical but equivalent bytes. */
export interface Looseness {
  /** Extra varint bytes (0–3) for a length or value; default none. */
  pad?: () => number;
  /** Unknown fields appended to each message; default none. */
  unknown?: () => Buffer | undefined;
}

export class Enc {
  private parts: Buffer[] = [];
  constructor(private readonly loose: Looseness = {}) {}
  varint(v: number): this {
    const bytes: number[] = [];
    do {
      bytes.push(v % 128);
      v = Math.floor(v / 128);
    } while (v > 0);
    const pad = Math.min(this.loose.pad?.() ?? 0, 10 - bytes.length);
    for (let i = 0; i < pad; i++) bytes.push(0);
    for (let i = 0; i < bytes.length - 1; i++) bytes[i] |= 0x80;
    this.parts.push(Buffer.from(bytes));
    return this;
  }
  tag(field: number, wt: number): this {
    return this.varint(field * 8 + wt);
  }
  bytes(field: number, b: Buffer | undefined, always = false): this {
    if (b === undefined || (b.length === 0 && !always)) return this;
    this.tag(field, 2).varint(b.length);
    this.parts.push(b);
    return this;
  }
  uint(field: number, v: number): this {
    return v === 0 ? this : this.tag(field, 0).varint(v);
  }
  msg<T>(field: number, v: T | undefined, write: (e: Enc, v: T) => void): this {
    if (v === undefined) return this;
    const inner = new Enc(this.loose);
    write(inner, v);
    return this.bytes(field, inner.finish(), true);
  }
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  finish(): Buffer {
    const u = this.loose.unknown?.();
    if (u) this.parts.push(u);
    return Buffer.concat(this.parts);
  }
}

const wDirNode = (e: Enc, n: ODirNode) => e.bytes(1, n.name).bytes(2, n.digest).uint(3, n.size);
const wFileNode = (e: Enc, n: OFileNode) => wDirNode(e, n).uint(4, n.executable ? 1 : 0);
const wSymlink = (e: Enc, n: OSymlinkNode) => e.bytes(1, n.name).bytes(2, n.target);

export function encodeDirectory(d: ODirectory, loose?: Looseness): Buffer {
  const e = new Enc(loose);
  for (const n of d.directories) e.msg(1, n, wDirNode);
  for (const n of d.files) e.msg(2, n, wFileNode);
  for (const n of d.symlinks) e.msg(3, n, wSymlink);
  return e.finish();
}

export function writeNode(e: Enc, n: ONode): void {
  if (n.type === 'directory') e.msg(1, n, wDirNode);
  else if (n.type === 'file') e.msg(2, n, wFileNode);
  else e.msg(3, n, wSymlink);
}

export function encodePathInfo(p: OPathInfo, loose?: Looseness): Buffer {
  const e = new Enc(loose);
  e.msg(1, p.node, writeNode);
  for (const r of p.references) e.bytes(2, r, true);
  e.msg(3, p.narinfo, (ne, n) => {
    ne.uint(1, n.narSize).bytes(2, n.narSha256);
    for (const s of n.signatures) ne.msg(3, s, (se, sv) => se.bytes(1, sv.name).bytes(2, sv.data));
    for (const r of n.referenceNames) ne.bytes(4, r, true);
    ne.msg(5, n.deriver, (de, dv) => de.bytes(1, dv.name).bytes(2, dv.digest));
    ne.msg(6, n.ca, (ce, cv) => ce.uint(1, cv.type).bytes(2, cv.digest));
  });
  return e.finish();
}

export const directoryDigest = (d: ODirectory): Buffer => Buffer.from(blake3(encodeDirectory(d)));

// --------------------------------------------------- castore.md §3 and §4

export function nameOk(name: Buffer): boolean {
  if (name.length === 0 || name.length > 255) return false;
  if (name.equals(Buffer.from('.')) || name.equals(Buffer.from('..'))) return false;
  return !name.includes(0x2f) && !name.includes(0);
}

export function targetOk(t: Buffer): boolean {
  return t.length > 0 && t.length <= 4095 && !t.includes(0);
}

/** HEAD formula 2n + S, and copy-era n + S. */
export function sizes(d: ODirectory): { head: number; legacy: number } {
  const n = d.directories.length + d.files.length + d.symlinks.length;
  const s = d.directories.reduce((a, c) => a + c.size, 0);
  return { head: 2 * n + s, legacy: n + s };
}

/** castore.md §3: is this one Directory valid on its own? */
export function directoryValid(d: ODirectory): boolean {
  const seen = new Set<string>();
  for (const list of [d.directories, d.files, d.symlinks] as { name: Buffer }[][]) {
    for (let i = 0; i < list.length; i++) {
      const name = list[i].name;
      if (!nameOk(name)) return false;
      if (i > 0 && Buffer.compare(list[i - 1].name, name) >= 0) return false;
      const k = name.toString('hex');
      if (seen.has(k)) return false;
      seen.add(k);
    }
  }
  if (d.directories.some((n) => n.digest.length !== 32)) return false;
  if (d.files.some((n) => n.digest.length !== 32)) return false;
  if (d.symlinks.some((n) => !targetOk(n.target))) return false;
  return sizes(d).head <= MAX_SAFE;
}

export type DirPutOutcome = { ok: true; root: Buffer; stored: { digest: Buffer; canonical: Buffer }[] } | { ok: false; why: string };

/**
 * wire.md §5.2: the outcome of a DirectoryService/Put stream of these raw
 * messages: each decodes and is valid, every child was sent earlier in the
 * stream with a size matching either formula, and exactly one root. And
 * (nix-castore, not tvix) every file whose blob the store has (`blobSizes`,
 * by hex digest) states that blob's size.
 */
export function directoryPutOutcome(msgs: Buffer[], blobSizes: ReadonlyMap<string, number> = new Map()): DirPutOutcome {
  if (msgs.length === 0) return { ok: false, why: 'empty stream' };
  const seen = new Map<string, { head: number; legacy: number }>();
  const referenced = new Set<string>();
  const order: { digest: Buffer; canonical: Buffer }[] = [];
  for (const [i, raw] of msgs.entries()) {
    let d: ODirectory;
    try {
      d = decodeDirectory(raw);
    } catch (err) {
      return { ok: false, why: `message ${i}: malformed (${(err as Error).message})` };
    }
    if (!directoryValid(d)) return { ok: false, why: `message ${i}: invalid directory` };
    for (const c of d.directories) {
      const s = seen.get(c.digest.toString('hex'));
      if (!s) return { ok: false, why: `message ${i}: unknown child` };
      if (c.size !== s.head && c.size !== s.legacy) return { ok: false, why: `message ${i}: wrong child size` };
    }
    for (const f of d.files) {
      const real = blobSizes.get(f.digest.toString('hex'));
      if (real !== undefined && real !== f.size) return { ok: false, why: `message ${i}: a file states size ${f.size}, its blob has ${real}` };
    }
    const digest = directoryDigest(d);
    const k = digest.toString('hex');
    if (!seen.has(k)) {
      seen.set(k, sizes(d));
      order.push({ digest, canonical: encodeDirectory(d) });
      for (const c of d.directories) referenced.add(c.digest.toString('hex'));
    }
  }
  const roots = order.filter((o) => !referenced.has(o.digest.toString('hex')));
  if (roots.length !== 1) return { ok: false, why: `${roots.length} roots` };
  return { ok: true, root: roots[0].digest, stored: order };
}

// -------------------------------------------------- store.md §1, §2, §3.3

export const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

export function nix32Encode(b: Buffer): string {
  const len = Math.floor((b.length * 8 + 4) / 5);
  let s = '';
  for (let g = len - 1; g >= 0; g--) {
    const bit = g * 5;
    const i = bit >> 3;
    const j = bit & 7;
    s += NIX32[(((b[i] ?? 0) | ((b[i + 1] ?? 0) << 8)) >> j) & 31];
  }
  return s;
}

/** Decodes exactly 32 characters into 20 bytes, or undefined. */
export function nix32Decode20(s: Buffer): Buffer | undefined {
  if (s.length !== 32) return undefined;
  const out = Buffer.alloc(20);
  for (let k = 0; k < 32; k++) {
    const c = NIX32.indexOf(String.fromCharCode(s[31 - k]));
    if (c < 0) return undefined;
    const bit = k * 5;
    const i = bit >> 3;
    const j = bit & 7;
    out[i] |= (c << j) & 0xff;
    const carry = c >> (8 - j);
    if (i + 1 < 20) out[i + 1] |= carry;
    else if (carry !== 0) return undefined;
  }
  return out;
}

const NAME_CHAR = /^[A-Za-z0-9+\-_?=.]$/;

export function storeNameOk(name: Buffer): boolean {
  if (name.length < 1 || name.length > 211) return false;
  for (const c of name) if (!NAME_CHAR.test(String.fromCharCode(c))) return false;
  // Nix's checkName: ".", ".." and names starting with ".-" or "..-" are refused.
  return !/^\.\.?(-|$)/.test(name.toString('latin1'));
}

/** The 20-byte digest of a `<hash>-<name>` basename, or undefined if it is none. */
export function basenameDigest(b: Buffer): Buffer | undefined {
  if (b.length < 34 || b[32] !== 0x2d) return undefined;
  if (!storeNameOk(b.subarray(33))) return undefined;
  return nix32Decode20(b.subarray(0, 32));
}

const CA_LEN = [32, 20, 64, 16, 32, 20, 16, 32, 64];

/** store.md §3.3 (HEAD): the store-path digest the PathInfo is keyed by, or why it is invalid. */
export function pathInfoKey(p: OPathInfo): { key: Buffer } | { why: string } {
  const n = p.node;
  if (!n) return { why: 'node unset' };
  if (!nameOk(n.name)) return { why: 'root name not a castore name' };
  if (n.type === 'symlink' ? !targetOk(n.target) : n.digest.length !== 32) return { why: 'root node content' };
  const key = basenameDigest(n.name);
  if (!key) return { why: 'root name not a store path basename' };
  const ni = p.narinfo;
  if (!ni) return { why: 'narinfo missing' };
  if (p.references.some((r) => r.length !== 20)) return { why: 'reference length' };
  if (ni.referenceNames.length !== p.references.length) return { why: 'reference count' };
  for (const [i, name] of ni.referenceNames.entries()) {
    const d = basenameDigest(name);
    if (!d || !d.equals(p.references[i])) return { why: `reference_names[${i}]` };
  }
  if (ni.narSha256.length !== 32) return { why: 'nar_sha256 length' };
  if (ni.deriver && (ni.deriver.digest.length !== 20 || !storeNameOk(ni.deriver.name))) return { why: 'deriver' };
  if (ni.signatures.some((s) => s.data.length !== 64)) return { why: 'signature length' };
  if (ni.ca && (ni.ca.type >= CA_LEN.length || ni.ca.digest.length !== CA_LEN[ni.ca.type])) return { why: 'ca' };
  return { key };
}
