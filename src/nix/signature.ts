/**
 * narinfo fingerprints and ed25519 signatures in Nix's key formats (store.md §7).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { formatNix32, fromBase64, toBase64 } from './hash.js';
import { absolute, sortStorePaths } from './store-path.js';
import type { StorePath } from './store-path.js';

export const SIGNATURE_LENGTH = 64;
export const PUBLIC_KEY_LENGTH = 32;
export const SEED_LENGTH = 32;

export interface Signature {
  /** Key name, e.g. `cache.nixos.org-1`. */
  name: string;
  /** 64 raw ed25519 signature bytes. */
  data: Uint8Array;
}

export interface PublicKey {
  name: string;
  /** 32 raw bytes. */
  key: Uint8Array;
  keyObject: KeyObject;
}

export interface SecretKey {
  name: string;
  /** The 32-byte ed25519 seed (first half of the Nix secret key). */
  seed: Uint8Array;
  /** The 32-byte public key (second half of the Nix secret key). */
  publicKey: Uint8Array;
  keyObject: KeyObject;
}

/**
 * The bytes that are signed:
 * `1;<store path>;sha256:<nixbase32>;<nar size>;<refs joined by ",">`.
 * References are put in nixbase32 order without duplicates, as Nix does
 * (tvix keeps the given order, which is the same for sorted input).
 */
export function fingerprint(
  storePath: StorePath,
  narSha256: Uint8Array,
  narSize: number,
  references: Iterable<StorePath>,
): string {
  if (!Number.isSafeInteger(narSize) || narSize < 0) throw new Error(`invalid NAR size ${String(narSize)}`);
  const refs = sortStorePaths(references).map(absolute).join(',');
  return `1;${absolute(storePath)};${formatNix32(narSha256)};${narSize};${refs}`;
}

const KEY_NAME_RE = /^[A-Za-z0-9.-]+$/;

export function isValidKeyName(name: string): boolean {
  return KEY_NAME_RE.test(name);
}

function validateKeyName(name: string, what: string, input: string): void {
  if (name.length === 0) throw new Error(`invalid ${what} ${JSON.stringify(input)}: empty key name`);
  if (!KEY_NAME_RE.test(name)) {
    throw new Error(
      `invalid ${what} ${JSON.stringify(input)}: key name ${JSON.stringify(name)} may only contain letters, digits, "-" and "."`,
    );
  }
}

/** Splits `<name>:<base64>` and decodes the base64, checking its byte length. */
function splitNamed(text: string, what: string, expectedBytes: number, display: string): [string, Uint8Array] {
  const colon = text.indexOf(':');
  if (colon < 0) throw new Error(`invalid ${what} ${display}: expected "<name>:<base64>"`);
  const name = text.slice(0, colon);
  validateKeyName(name, what, display);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64(text.slice(colon + 1));
  } catch (e) {
    throw new Error(`invalid ${what} ${display}: ${(e as Error).message}`);
  }
  if (bytes.length !== expectedBytes) {
    throw new Error(`invalid ${what} ${display}: expected ${expectedBytes} bytes after the name, got ${bytes.length}`);
  }
  return [name, bytes];
}

// DER prefixes wrapping a raw ed25519 key (RFC 8410).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function privateKeyFromSeed(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

function publicKeyObject(key: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, key]), format: 'der', type: 'spki' });
}

function rawPublicKey(k: KeyObject): Uint8Array {
  const der = createPublicKey(k).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - PUBLIC_KEY_LENGTH));
}

/** Builds a secret key from a name and a 32-byte seed. */
export function secretKeyFromSeed(name: string, seed: Uint8Array): SecretKey {
  validateKeyName(name, 'secret key name', name);
  if (seed.length !== SEED_LENGTH) throw new Error(`ed25519 seed must be ${SEED_LENGTH} bytes, got ${seed.length}`);
  const keyObject = privateKeyFromSeed(seed);
  return { name, seed: new Uint8Array(seed), publicKey: rawPublicKey(keyObject), keyObject };
}

/** A fresh random key pair named `name`. */
export function generateSecretKey(name: string): SecretKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  return secretKeyFromSeed(name, new Uint8Array(der.subarray(der.length - SEED_LENGTH)));
}

/**
 * Parses a Nix secret key file: `<name>:<base64(seed ‖ public key)>`
 * (surrounding whitespace ignored). The public half must match the seed.
 */
export function parseSecretKey(text: string): SecretKey {
  const t = text.trim();
  // Never quote the key material in errors.
  const display = `(secret key file${t.includes(':') ? ` named ${JSON.stringify(t.slice(0, t.indexOf(':')))}` : ''})`;
  const [name, bytes] = splitNamed(t, 'secret key', SEED_LENGTH + PUBLIC_KEY_LENGTH, display);
  const key = secretKeyFromSeed(name, bytes.subarray(0, SEED_LENGTH));
  if (!Buffer.from(key.publicKey).equals(Buffer.from(bytes.subarray(SEED_LENGTH)))) {
    throw new Error(`invalid secret key ${display}: the public half does not match the key derived from the seed`);
  }
  return key;
}

/** `<name>:<base64(seed ‖ public key)>` */
export function formatSecretKey(sk: SecretKey): string {
  return `${sk.name}:${toBase64(Buffer.concat([sk.seed, sk.publicKey]))}`;
}

/** Parses a public key `<name>:<base64(32 bytes)>` (as in trusted-public-keys). */
export function parsePublicKey(text: string): PublicKey {
  const t = text.trim();
  const [name, key] = splitNamed(t, 'public key', PUBLIC_KEY_LENGTH, JSON.stringify(t));
  let keyObject: KeyObject;
  try {
    keyObject = publicKeyObject(key);
  } catch (e) {
    throw new Error(`invalid public key ${JSON.stringify(t)}: ${(e as Error).message}`);
  }
  return { name, key, keyObject };
}

export function formatPublicKey(pk: { name: string; key: Uint8Array }): string {
  return `${pk.name}:${toBase64(pk.key)}`;
}

export function publicKeyOf(sk: SecretKey): PublicKey {
  return { name: sk.name, key: sk.publicKey, keyObject: publicKeyObject(sk.publicKey) };
}

/** Signs a fingerprint (UTF-8 string or raw bytes). */
export function sign(fp: string | Uint8Array, sk: SecretKey): Signature {
  const data = edSign(null, typeof fp === 'string' ? Buffer.from(fp, 'utf8') : fp, sk.keyObject);
  return { name: sk.name, data: new Uint8Array(data) };
}

/**
 * True iff the signature's name equals the key's name and the signature is a
 * valid ed25519 signature of the fingerprint under that key.
 */
export function verify(fp: string | Uint8Array, sig: Signature, pk: PublicKey): boolean {
  if (sig.name !== pk.name || sig.data.length !== SIGNATURE_LENGTH) return false;
  try {
    return edVerify(null, typeof fp === 'string' ? Buffer.from(fp, 'utf8') : fp, pk.keyObject, sig.data);
  } catch {
    return false;
  }
}

/** True if any of `sigs` verifies under any of `keys`. */
export function verifyAny(fp: string | Uint8Array, sigs: Iterable<Signature>, keys: Iterable<PublicKey>): boolean {
  const ks = [...keys];
  for (const s of sigs) for (const k of ks) if (verify(fp, s, k)) return true;
  return false;
}

/** `<name>:<base64(64 bytes)>` */
export function formatSignature(sig: Signature): string {
  if (sig.data.length !== SIGNATURE_LENGTH) {
    throw new Error(`signature ${JSON.stringify(sig.name)} must be ${SIGNATURE_LENGTH} bytes, got ${sig.data.length}`);
  }
  validateKeyName(sig.name, 'signature', sig.name);
  return `${sig.name}:${toBase64(sig.data)}`;
}

/** Parses `<name>:<base64(64 bytes)>`. */
export function parseSignature(text: string): Signature {
  const [name, data] = splitNamed(text, 'signature', SIGNATURE_LENGTH, JSON.stringify(text));
  return { name, data };
}
