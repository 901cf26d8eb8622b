/**
 * Hash string representations used by Nix (store.md §4) and content-address
 * strings (narinfo `CA:` field) mapped to the `NARInfo.CA` protobuf shape
 * (wire.md §4).
 */
import { createHash } from 'node:crypto';
import * as nixbase32 from './nixbase32.js';

export type HashAlgo = 'md5' | 'sha1' | 'sha256' | 'sha512';

/** Digest length in bytes of each supported algorithm. */
export const HASH_LENGTH: Readonly<Record<HashAlgo, number>> = Object.freeze({
  md5: 16,
  sha1: 20,
  sha256: 32,
  sha512: 64,
});

export function isHashAlgo(s: string): s is HashAlgo {
  return Object.prototype.hasOwnProperty.call(HASH_LENGTH, s);
}

export function sha256(data: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

// ---------------------------------------------------------------------------
// Low-level encodings

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** Decodes lowercase or uppercase hex; throws on odd length or non-hex characters. */
export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) {
    throw new Error(`invalid hex string ${JSON.stringify(s)}`);
  }
  return new Uint8Array(Buffer.from(s, 'hex'));
}

/**
 * Strict standard base64 (RFC 4648 §4, with padding). Unlike
 * `Buffer.from(s, 'base64')` it rejects stray characters, missing padding and
 * non-canonical trailing bits.
 */
export function fromBase64(s: string): Uint8Array {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
    throw new Error(`invalid base64 string ${JSON.stringify(s)}`);
  }
  const bytes = Buffer.from(s, 'base64');
  if (bytes.toString('base64') !== s) {
    throw new Error(`invalid base64 string ${JSON.stringify(s)} (non-canonical encoding)`);
  }
  return new Uint8Array(bytes);
}

// ---------------------------------------------------------------------------
// Typed hash strings: `<algo>:<nixbase32|hex|base64>` and SRI `<algo>-<base64>`

export interface TypedHash {
  algo: HashAlgo;
  digest: Uint8Array;
}

/**
 * Decodes the digest part of a hash string for a known algorithm; the encoding
 * is recognised by its length (nixbase32, hex or base64 lengths never collide
 * for the same algorithm).
 */
export function decodeDigest(algo: HashAlgo, encoded: string, context: string = encoded): Uint8Array {
  const n = HASH_LENGTH[algo];
  let digest: Uint8Array;
  try {
    if (encoded.length === nixbase32.encodedLength(n)) digest = nixbase32.decode(encoded);
    else if (encoded.length === 2 * n) digest = fromHex(encoded);
    else if (encoded.length === 4 * Math.ceil(n / 3)) digest = fromBase64(encoded);
    else {
      throw new Error(
        `length ${encoded.length} matches no encoding of a ${algo} digest ` +
          `(nixbase32 ${nixbase32.encodedLength(n)}, hex ${2 * n}, base64 ${4 * Math.ceil(n / 3)})`,
      );
    }
  } catch (e) {
    throw new Error(`invalid ${algo} hash ${JSON.stringify(context)}: ${(e as Error).message}`);
  }
  return digest;
}

/** Parses `<algo>:<nixbase32|hex|base64>` or SRI `<algo>-<base64>`. */
export function parseTypedHash(s: string): TypedHash {
  const m = /^([a-z0-9]+)([:-])(.*)$/.exec(s);
  if (!m) throw new Error(`invalid hash string ${JSON.stringify(s)}: expected "<algo>:<digest>" or "<algo>-<base64>"`);
  const [, algo, sep, rest] = m;
  if (!isHashAlgo(algo)) {
    throw new Error(`invalid hash string ${JSON.stringify(s)}: unknown hash algorithm ${JSON.stringify(algo)}`);
  }
  if (sep === '-') {
    const n = HASH_LENGTH[algo];
    let digest: Uint8Array;
    try {
      digest = fromBase64(rest);
    } catch (e) {
      throw new Error(`invalid SRI hash ${JSON.stringify(s)}: ${(e as Error).message}`);
    }
    if (digest.length !== n) {
      throw new Error(`invalid SRI hash ${JSON.stringify(s)}: ${algo} digest must be ${n} bytes, got ${digest.length}`);
    }
    return { algo, digest };
  }
  return { algo, digest: decodeDigest(algo, rest, s) };
}

/**
 * Parses a NAR hash in any of the forms of store.md §4:
 * `sha256:<nixbase32 52>`, `sha256:<hex 64>` or SRI `sha256-<base64 44>`
 * (base64 after `sha256:` is accepted too). Returns the raw 32 bytes.
 */
export function parseNarHash(s: string): Uint8Array {
  const h = parseTypedHash(s);
  if (h.algo !== 'sha256') {
    throw new Error(`invalid NAR hash ${JSON.stringify(s)}: expected a sha256 hash, got ${h.algo}`);
  }
  return h.digest;
}

function checkSha256(h: Uint8Array): void {
  if (h.length !== 32) throw new Error(`expected a 32-byte sha256 digest, got ${h.length} bytes`);
}

/** `sha256:<nixbase32>` — the Nix default, used in narinfo and fingerprints. */
export function formatNix32(h: Uint8Array): string {
  checkSha256(h);
  return `sha256:${nixbase32.encode(h)}`;
}

/** `sha256-<base64>` (SRI). */
export function formatSri(h: Uint8Array): string {
  checkSha256(h);
  return `sha256-${toBase64(h)}`;
}

/** `sha256:<lowercase hex>`. */
export function formatHexHash(h: Uint8Array): string {
  checkSha256(h);
  return `sha256:${toHex(h)}`;
}

// ---------------------------------------------------------------------------
// Content addresses (`NARInfo.CA`)

/** `NARInfo.CA.Hash` enum values (wire.md §4). */
export const CaHash = Object.freeze({
  NAR_SHA256: 0,
  NAR_SHA1: 1,
  NAR_SHA512: 2,
  NAR_MD5: 3,
  TEXT_SHA256: 4,
  FLAT_SHA1: 5,
  FLAT_MD5: 6,
  FLAT_SHA256: 7,
  FLAT_SHA512: 8,
} as const);

export type CaHashType = (typeof CaHash)[keyof typeof CaHash];

/** How the content was hashed: NAR serialisation, flat file bytes, or text. */
export type CaMethod = 'nar' | 'flat' | 'text';

export interface CaHashInfo {
  name: keyof typeof CaHash;
  method: CaMethod;
  algo: HashAlgo;
  /** Required length of `ContentAddress.digest`. */
  digestLength: number;
}

function info(name: keyof typeof CaHash, method: CaMethod, algo: HashAlgo): CaHashInfo {
  return Object.freeze({ name, method, algo, digestLength: HASH_LENGTH[algo] });
}

/** Per enum value: method, algorithm and expected digest length. */
export const CA_HASH_INFO: Readonly<Record<CaHashType, CaHashInfo>> = Object.freeze({
  0: info('NAR_SHA256', 'nar', 'sha256'),
  1: info('NAR_SHA1', 'nar', 'sha1'),
  2: info('NAR_SHA512', 'nar', 'sha512'),
  3: info('NAR_MD5', 'nar', 'md5'),
  4: info('TEXT_SHA256', 'text', 'sha256'),
  5: info('FLAT_SHA1', 'flat', 'sha1'),
  6: info('FLAT_MD5', 'flat', 'md5'),
  7: info('FLAT_SHA256', 'flat', 'sha256'),
  8: info('FLAT_SHA512', 'flat', 'sha512'),
});

export function isCaHashType(n: number): n is CaHashType {
  return Number.isInteger(n) && n >= 0 && n <= 8;
}

/** Expected digest length of a CA type (wire.md §4 table). */
export function caDigestLength(type: CaHashType): number {
  return CA_HASH_INFO[type].digestLength;
}

/** The enum value for a method/algorithm pair; throws for text with a non-sha256 algo. */
export function caHashType(method: CaMethod, algo: HashAlgo): CaHashType {
  for (const [k, v] of Object.entries(CA_HASH_INFO)) {
    if (v.method === method && v.algo === algo) return Number(k) as CaHashType;
  }
  throw new Error(`unsupported content address: ${method} with ${algo}`);
}

export interface ContentAddress {
  type: CaHashType;
  /** Raw digest; its length must be `caDigestLength(type)`. */
  digest: Uint8Array;
}

/** Throws unless `ca.type` is a known enum value and the digest has the right length. */
export function validateContentAddress(ca: ContentAddress): void {
  if (!isCaHashType(ca.type)) throw new Error(`unknown content address hash type ${String(ca.type)}`);
  const i = CA_HASH_INFO[ca.type];
  if (ca.digest.length !== i.digestLength) {
    throw new Error(`content address ${i.name} needs a ${i.digestLength}-byte digest, got ${ca.digest.length} bytes`);
  }
}

/**
 * Parses a CA string: `fixed:r:<algo>:<hash>`, `fixed:<algo>:<hash>` or
 * `text:sha256:<hash>`; the hash may be nixbase32, hex or base64.
 */
export function parseContentAddress(s: string): ContentAddress {
  let method: CaMethod;
  let rest: string;
  if (s.startsWith('text:')) {
    method = 'text';
    rest = s.slice(5);
  } else if (s.startsWith('fixed:r:')) {
    method = 'nar';
    rest = s.slice(8);
  } else if (s.startsWith('fixed:')) {
    method = 'flat';
    rest = s.slice(6);
  } else {
    throw new Error(`invalid content address ${JSON.stringify(s)}: must start with "fixed:r:", "fixed:" or "text:"`);
  }
  const colon = rest.indexOf(':');
  if (colon < 0) throw new Error(`invalid content address ${JSON.stringify(s)}: expected "<algo>:<hash>" after the prefix`);
  const algo = rest.slice(0, colon);
  if (!isHashAlgo(algo)) {
    throw new Error(`invalid content address ${JSON.stringify(s)}: unknown hash algorithm ${JSON.stringify(algo)}`);
  }
  if (method === 'text' && algo !== 'sha256') {
    throw new Error(`invalid content address ${JSON.stringify(s)}: text content addresses must use sha256`);
  }
  const digest = decodeDigest(algo, rest.slice(colon + 1), s);
  return { type: caHashType(method, algo), digest };
}

/** Renders a CA the way Nix writes it (digest in nixbase32). */
export function formatContentAddress(ca: ContentAddress): string {
  validateContentAddress(ca);
  const i = CA_HASH_INFO[ca.type];
  const prefix = i.method === 'text' ? 'text:' : i.method === 'nar' ? 'fixed:r:' : 'fixed:';
  return `${prefix}${i.algo}:${nixbase32.encode(ca.digest)}`;
}
