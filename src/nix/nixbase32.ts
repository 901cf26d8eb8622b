/**
 * nixbase32: Nix's base-32 encoding of hashes (store.md §1).
 *
 * Alphabet `0123456789abcdfghijklmnpqrsvwxyz` (no e, o, t, u), no padding.
 * The input is read as one little-endian integer; the first output character
 * holds its most significant 5 bits. Hence lexicographic order of encoded
 * strings equals comparing the bytes from the last one backwards.
 */

export const ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

/** Character code → 5-bit value, or -1 for characters outside the alphabet. */
const VALUES: Int8Array = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let v = 0; v < ALPHABET.length; v++) table[ALPHABET.charCodeAt(v)] = v;
  return table;
})();

/** Number of characters needed to encode `n` bytes: floor((8n + 4) / 5). */
export function encodedLength(n: number): number {
  return Math.floor((8 * n + 4) / 5);
}

/** Number of bytes that `m` characters decode to: floor(5m / 8). */
export function decodedLength(m: number): number {
  return Math.floor((5 * m) / 8);
}

export function encode(bytes: Uint8Array): string {
  const len = encodedLength(bytes.length);
  let out = '';
  for (let g = len - 1; g >= 0; g--) {
    const b = g * 5;
    const i = b >> 3;
    const j = b & 7;
    const next = i + 1 < bytes.length ? bytes[i + 1] : 0;
    out += ALPHABET[((bytes[i] | (next << 8)) >> j) & 31];
  }
  return out;
}

/**
 * Decodes a nixbase32 string. Throws if the string contains a character
 * outside the alphabet, has a length no byte count encodes to, or has
 * non-zero bits beyond the decoded length.
 */
export function decode(str: string): Uint8Array {
  const m = str.length;
  const n = decodedLength(m);
  if (encodedLength(n) !== m) {
    throw new Error(`invalid nixbase32 length ${m} in ${JSON.stringify(str)}`);
  }
  const out = new Uint8Array(n);
  for (let k = 0; k < m; k++) {
    const code = str.charCodeAt(k);
    const c = code < 128 ? VALUES[code] : -1;
    if (c < 0) {
      throw new Error(`invalid nixbase32 character ${JSON.stringify(str[k])} at position ${k} in ${JSON.stringify(str)}`);
    }
    const b = (m - 1 - k) * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i] |= (c << j) & 0xff;
    const carry = c >> (8 - j);
    if (carry !== 0) {
      if (i + 1 >= n) {
        throw new Error(`invalid nixbase32 ${JSON.stringify(str)}: non-zero trailing bits`);
      }
      out[i + 1] |= carry;
    }
  }
  return out;
}

/** True if `str` is a valid nixbase32 encoding of exactly `byteLength` bytes. */
export function isValid(str: string, byteLength?: number): boolean {
  if (byteLength !== undefined && str.length !== encodedLength(byteLength)) return false;
  try {
    decode(str);
    return true;
  } catch {
    return false;
  }
}
