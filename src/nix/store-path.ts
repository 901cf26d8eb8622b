/**
 * Nix store paths (store.md §2): `/nix/store/<nixbase32 of 20 bytes>-<name>`,
 * and computation of content-addressed store paths (§2.1).
 */
import * as nixbase32 from './nixbase32.js';
import { CA_HASH_INFO, HASH_LENGTH, sha256, toHex, validateContentAddress } from './hash.js';
import type { ContentAddress, HashAlgo } from './hash.js';

export const STORE_DIR = '/nix/store';
export const DIGEST_LENGTH = 20;
/** Length of the nixbase32 hash part of a basename. */
export const HASH_PART_LENGTH = 32;
export const MAX_NAME_LENGTH = 211;
/** 32 + 1 + 211 */
export const MAX_BASENAME_LENGTH = HASH_PART_LENGTH + 1 + MAX_NAME_LENGTH;

export interface StorePath {
  /** 20 raw bytes. */
  digest: Uint8Array;
  /** The part after `<hash>-`. */
  name: string;
}

export class StorePathError extends Error {
  override name = 'StorePathError';
}

const NAME_RE = /^[A-Za-z0-9+\-_?=.]+$/;

/**
 * Nix's rule (store-dir-config.cc, checkName): the first dash-separated
 * component must not be `.` or `..`, so `.`, `..`, `.-x` and `..-x` are
 * refused; `.gitignore` or `..x` are fine. Such names would be path
 * traversal in every tool that joins them to a directory.
 */
function dotComponent(name: string): string | undefined {
  if (name[0] !== '.') return undefined;
  if (name.length === 1 || name[1] === '-') return '.';
  if (name[1] === '.' && (name.length === 2 || name[2] === '-')) return '..';
  return undefined;
}

/**
 * Throws unless `name` is a valid store path name: 1…211 characters of
 * `[A-Za-z0-9+-_?=.]`, whose first dash-separated component is not `.` or
 * `..`. Another leading `.` is accepted (tvix HEAD / current Nix).
 */
export function validateName(name: string): void {
  if (name.length === 0) throw new StorePathError('invalid store path name "": must not be empty');
  if (name.length > MAX_NAME_LENGTH) {
    throw new StorePathError(
      `invalid store path name ${JSON.stringify(name)}: ${name.length} characters, at most ${MAX_NAME_LENGTH} allowed`,
    );
  }
  if (!NAME_RE.test(name)) {
    const bad = [...name].find((c) => !NAME_RE.test(c));
    throw new StorePathError(
      `invalid store path name ${JSON.stringify(name)}: character ${JSON.stringify(bad)} not allowed ` +
        '(only A-Z a-z 0-9 + - _ ? = .)',
    );
  }
  const dot = dotComponent(name);
  if (dot !== undefined) {
    throw new StorePathError(
      `invalid store path name ${JSON.stringify(name)}: its first dash-separated component must not be "${dot}"`,
    );
  }
}


export function isValidName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME_RE.test(name) && dotComponent(name) === undefined;
}

/** Builds a StorePath after checking the digest length and the name. */
export function newStorePath(digest: Uint8Array, name: string): StorePath {
  if (digest.length !== DIGEST_LENGTH) {
    throw new StorePathError(`store path digest must be ${DIGEST_LENGTH} bytes, got ${digest.length}`);
  }
  validateName(name);
  return { digest, name };
}

/** Parses `<hash>-<name>` (no directory, no sub-path). */
export function parseBasename(s: string): StorePath {
  if (s.length < HASH_PART_LENGTH + 2) {
    throw new StorePathError(
      `invalid store path basename ${JSON.stringify(s)}: invalid length (need 32-char hash, "-" and a name)`,
    );
  }
  let digest: Uint8Array;
  try {
    digest = nixbase32.decode(s.slice(0, HASH_PART_LENGTH));
  } catch (e) {
    throw new StorePathError(`invalid store path basename ${JSON.stringify(s)}: bad hash part: ${(e as Error).message}`);
  }
  if (s[HASH_PART_LENGTH] !== '-') {
    throw new StorePathError(`invalid store path basename ${JSON.stringify(s)}: expected "-" after the 32-char hash`);
  }
  const name = s.slice(HASH_PART_LENGTH + 1);
  try {
    validateName(name);
  } catch (e) {
    throw new StorePathError(`invalid store path basename ${JSON.stringify(s)}: ${(e as Error).message}`);
  }
  return { digest, name };
}

/** Parses `/nix/store/<hash>-<name>`; anything after the basename (a sub-path) is an error. */
export function parseAbsolute(s: string): StorePath {
  const prefix = STORE_DIR + '/';
  if (!s.startsWith(prefix)) {
    throw new StorePathError(`invalid store path ${JSON.stringify(s)}: must start with "${prefix}"`);
  }
  const rest = s.slice(prefix.length);
  if (rest.includes('/')) {
    throw new StorePathError(`invalid store path ${JSON.stringify(s)}: sub-paths are not allowed`);
  }
  try {
    return parseBasename(rest);
  } catch (e) {
    throw new StorePathError(`invalid store path ${JSON.stringify(s)}: ${(e as Error).message}`);
  }
}

/** The nixbase32 hash part (32 chars). */
export function hashPart(sp: StorePath): string {
  return nixbase32.encode(sp.digest);
}

/** `<hash>-<name>` */
export function basename(sp: StorePath): string {
  return `${nixbase32.encode(sp.digest)}-${sp.name}`;
}

/** `/nix/store/<hash>-<name>` */
export function absolute(sp: StorePath): string {
  return `${STORE_DIR}/${basename(sp)}`;
}

/**
 * Orders like the basename strings do: nixbase32 of the digest (that is, the
 * digest bytes compared from the last one backwards), then the name.
 */
export function compareStorePaths(a: StorePath, b: StorePath): number {
  const n = Math.min(a.digest.length, b.digest.length);
  for (let i = 1; i <= n; i++) {
    const d = a.digest[a.digest.length - i] - b.digest[b.digest.length - i];
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  if (a.digest.length !== b.digest.length) return a.digest.length < b.digest.length ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function storePathsEqual(a: StorePath, b: StorePath): boolean {
  return compareStorePaths(a, b) === 0;
}

/** Sorted copy (nixbase32 order) without duplicates. */
export function sortStorePaths(paths: Iterable<StorePath>): StorePath[] {
  const sorted = [...paths].sort(compareStorePaths);
  return sorted.filter((p, i) => i === 0 || compareStorePaths(sorted[i - 1], p) !== 0);
}

// ---------------------------------------------------------------------------
// Content-addressed store paths (store.md §2.1)

/** XOR-folds a hash into `size` bytes: `out[i mod size] ^= h[i]`. */
export function compressHash(h: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < h.length; i++) out[i % size] ^= h[i];
  return out;
}

/**
 * The generic construction: digest = compress20(sha256(
 * `<type>:sha256:<hex(inner)>:/nix/store:<name>`)).
 */
export function makeStorePath(type: string, innerSha256: Uint8Array, name: string): StorePath {
  validateName(name);
  if (innerSha256.length !== 32) throw new StorePathError(`inner digest must be 32 bytes, got ${innerSha256.length}`);
  const fingerprint = `${type}:sha256:${toHex(innerSha256)}:${STORE_DIR}:${name}`;
  return { digest: compressHash(sha256(fingerprint), DIGEST_LENGTH), name };
}

function typeWithReferences(prefix: string, references: Iterable<StorePath>, self: boolean): string {
  let type = prefix;
  for (const r of sortStorePaths(references)) type += ':' + absolute(r);
  if (self) type += ':self';
  return type;
}

/** Path of a text store object (`builtins.toFile`, .drv files); `contentSha256` hashes the file contents. */
export function makeTextPath(name: string, contentSha256: Uint8Array, references: Iterable<StorePath> = []): StorePath {
  return makeStorePath(typeWithReferences('text', references, false), contentSha256, name);
}

/**
 * Path of a fixed-output store object. NAR+sha256 (`fixed:r:sha256`, what
 * `tvix-store import` produces) is a "source" path that may have references
 * and a self-reference; every other method/algorithm must have neither.
 */
export function makeFixedOutputPath(
  name: string,
  method: 'nar' | 'flat',
  algo: HashAlgo,
  digest: Uint8Array,
  references: Iterable<StorePath> = [],
  self = false,
): StorePath {
  if (digest.length !== HASH_LENGTH[algo]) {
    throw new StorePathError(`${algo} digest must be ${HASH_LENGTH[algo]} bytes, got ${digest.length}`);
  }
  if (method === 'nar' && algo === 'sha256') {
    return makeStorePath(typeWithReferences('source', references, self), digest, name);
  }
  if (self || [...references].length > 0) {
    throw new StorePathError(`fixed-output path ${JSON.stringify(name)} (${method}, ${algo}) cannot have references`);
  }
  const inner = sha256(`fixed:out:${method === 'nar' ? 'r:' : ''}${algo}:${toHex(digest)}:`);
  return makeStorePath('output:out', inner, name);
}

/** `makeFixedOutputPath(name, 'nar', 'sha256', narSha256, references, self)` */
export function makeSourcePath(
  name: string,
  narSha256: Uint8Array,
  references: Iterable<StorePath> = [],
  self = false,
): StorePath {
  return makeFixedOutputPath(name, 'nar', 'sha256', narSha256, references, self);
}

/** Store path for any content address (dispatches on `ca.type`). */
export function makeContentAddressedPath(
  name: string,
  ca: ContentAddress,
  references: Iterable<StorePath> = [],
  self = false,
): StorePath {
  validateContentAddress(ca);
  const i = CA_HASH_INFO[ca.type];
  if (i.method === 'text') {
    if (self) throw new StorePathError(`text path ${JSON.stringify(name)} cannot reference itself`);
    return makeTextPath(name, ca.digest, references);
  }
  return makeFixedOutputPath(name, i.method, i.algo, ca.digest, references, self);
}
