import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CA_HASH_INFO,
  CaHash,
  caDigestLength,
  caHashType,
  formatContentAddress,
  formatHexHash,
  formatNix32,
  formatSri,
  fromBase64,
  isCaHashType,
  parseContentAddress,
  parseNarHash,
  parseTypedHash,
  validateContentAddress,
} from '../../src/nix/hash.js';
import type { CaHashType } from '../../src/nix/hash.js';

const HELLO_HEX = '03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040';
const HELLO = new Uint8Array(Buffer.from(HELLO_HEX, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

// store.md §4
const NIX32 = 'sha256:0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3';
const SRI = 'sha256-A+f2O+MLBl14vPYV9Uc1Rf2062mqQW9DSVtOBc37gEA=';
const HEX = 'sha256:03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040';

test('format the three NAR hash forms of §4', () => {
  assert.equal(formatNix32(HELLO), NIX32);
  assert.equal(formatSri(HELLO), SRI);
  assert.equal(formatHexHash(HELLO), HEX);
});

test('parseNarHash accepts nixbase32, SRI and hex', () => {
  for (const s of [NIX32, SRI, HEX, HEX.toUpperCase().replace('SHA256', 'sha256')]) {
    assert.equal(toHex(parseNarHash(s)), HELLO_HEX, s);
  }
  // base64 after "sha256:" is accepted as well (Nix does)
  assert.equal(toHex(parseNarHash('sha256:A+f2O+MLBl14vPYV9Uc1Rf2062mqQW9DSVtOBc37gEA=')), HELLO_HEX);
});

test('parseNarHash errors', () => {
  assert.throws(() => parseNarHash('0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3'), /expected "<algo>:<digest>"/);
  assert.throws(() => parseNarHash('sha1:0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33'), /expected a sha256 hash, got sha1/);
  assert.throws(() => parseNarHash('blake3:abcd'), /unknown hash algorithm "blake3"/);
  assert.throws(() => parseNarHash('sha256:abc'), /length 3 matches no encoding of a sha256 digest/);
  assert.throws(() => parseNarHash('sha256:0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrqe'), /invalid nixbase32 character "e"/);
  assert.throws(() => parseNarHash('sha256:' + 'g'.repeat(64)), /invalid hex/);
  assert.throws(() => parseNarHash('sha256-A+f2O+MLBl14vPYV9Uc1Rf2062mqQW9DSVtOBc37gE=='), /sha256 digest must be 32 bytes|invalid base64/);
  assert.throws(() => parseNarHash('sha256-A+f2O+MLBl14vPYV9Uc1Rf2062mqQW9DSVtOBc37gEB='), /non-canonical/);
  assert.throws(() => parseNarHash('sha256-' + 'A'.repeat(43)), /invalid base64/);
});

test('format rejects wrong digest length', () => {
  assert.throws(() => formatNix32(new Uint8Array(20)), /32-byte/);
  assert.throws(() => formatSri(new Uint8Array(31)), /32-byte/);
});

test('parseTypedHash for other algorithms', () => {
  const h = parseTypedHash('sha1:0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33');
  assert.equal(h.algo, 'sha1');
  assert.equal(toHex(h.digest), '0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33');
  const m = parseTypedHash('md5-rL0Y20zC+Fzt72VPzMSk2A==');
  assert.equal(m.algo, 'md5');
  assert.equal(toHex(m.digest), 'acbd18db4cc2f85cedef654fccc4a4d8');
});

test('fromBase64 is strict', () => {
  assert.deepEqual([...fromBase64('AAE=')], [0, 1]);
  assert.throws(() => fromBase64('AAE'), /invalid base64/);
  assert.throws(() => fromBase64('AA E='), /invalid base64/);
  assert.throws(() => fromBase64('AAF='), /non-canonical/);
});

test('CaHash enum numbers and digest lengths (wire.md §4)', () => {
  const expected: [keyof typeof CaHash, number, number, string][] = [
    ['NAR_SHA256', 0, 32, 'fixed:r:sha256'],
    ['NAR_SHA1', 1, 20, 'fixed:r:sha1'],
    ['NAR_SHA512', 2, 64, 'fixed:r:sha512'],
    ['NAR_MD5', 3, 16, 'fixed:r:md5'],
    ['TEXT_SHA256', 4, 32, 'text:sha256'],
    ['FLAT_SHA1', 5, 20, 'fixed:sha1'],
    ['FLAT_MD5', 6, 16, 'fixed:md5'],
    ['FLAT_SHA256', 7, 32, 'fixed:sha256'],
    ['FLAT_SHA512', 8, 64, 'fixed:sha512'],
  ];
  assert.equal(Object.keys(CaHash).length, expected.length);
  for (const [name, value, len, prefix] of expected) {
    assert.equal(CaHash[name], value);
    assert.equal(caDigestLength(value as CaHashType), len);
    assert.equal(CA_HASH_INFO[value as CaHashType].name, name);
    // round trip through the text form
    const digest = new Uint8Array(len).map((_, i) => (i * 37 + value) & 0xff);
    const s = formatContentAddress({ type: value as CaHashType, digest });
    assert.ok(s.startsWith(prefix + ':'), s);
    const back = parseContentAddress(s);
    assert.equal(back.type, value);
    assert.deepEqual(back.digest, digest);
  }
  assert.ok(isCaHashType(8));
  assert.ok(!isCaHashType(9));
  assert.ok(!isCaHashType(-1));
  assert.equal(caHashType('nar', 'sha256'), CaHash.NAR_SHA256);
  assert.throws(() => caHashType('text', 'sha1'), /unsupported/);
});

test('CA strings: the hello.txt import CA (store.md §6)', () => {
  const s = 'fixed:r:sha256:0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3';
  const ca = parseContentAddress(s);
  assert.equal(ca.type, CaHash.NAR_SHA256);
  assert.equal(toHex(ca.digest), HELLO_HEX);
  assert.equal(formatContentAddress(ca), s);
  // hex digests are accepted, rendering uses nixbase32
  assert.equal(formatContentAddress(parseContentAddress('fixed:r:sha256:' + HELLO_HEX)), s);
  const flat = parseContentAddress('fixed:sha1:0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33');
  assert.equal(flat.type, CaHash.FLAT_SHA1);
  const text = parseContentAddress('text:sha256:' + HELLO_HEX);
  assert.equal(text.type, CaHash.TEXT_SHA256);
});

test('CA string errors', () => {
  assert.throws(() => parseContentAddress('sha256:' + HELLO_HEX), /must start with "fixed:r:", "fixed:" or "text:"/);
  assert.throws(() => parseContentAddress('text:sha1:0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33'), /text content addresses must use sha256/);
  assert.throws(() => parseContentAddress('fixed:r:blake3:' + HELLO_HEX), /unknown hash algorithm "blake3"/);
  assert.throws(() => parseContentAddress('fixed:r:sha256'), /expected "<algo>:<hash>"/);
  assert.throws(() => parseContentAddress('fixed:git:sha1:0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33'), /unknown hash algorithm "git"/);
  assert.throws(() => parseContentAddress('fixed:md5:' + HELLO_HEX), /matches no encoding of a md5 digest/);
});

test('validateContentAddress', () => {
  validateContentAddress({ type: CaHash.NAR_SHA256, digest: new Uint8Array(32) });
  // copy-era quirk: ASCII "sha256-<nixbase32>" (59 bytes) stored as digest
  assert.throws(
    () => validateContentAddress({ type: CaHash.NAR_SHA256, digest: new Uint8Array(59) }),
    /NAR_SHA256 needs a 32-byte digest, got 59 bytes/,
  );
  assert.throws(() => validateContentAddress({ type: 42 as CaHashType, digest: new Uint8Array(32) }), /unknown content address hash type 42/);
  assert.throws(() => formatContentAddress({ type: CaHash.FLAT_MD5, digest: new Uint8Array(32) }), /16-byte/);
});
