import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ALPHABET, decode, decodedLength, encode, encodedLength, isValid } from '../../src/nix/nixbase32.js';

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

// store.md §1 vectors
const VECTORS: [string, string][] = [
  ['', ''],
  ['1f', '0z'],
  ['8a12321522fd91efbd60ebb2481af88580f61600', '00bgd045z0d4icpbc2yyz4gx48ak44la'],
  ['b3a24de97a8fdbc835b9833169501030b8977031bcb54b3b3ac13740f846ab30', '0c5b8vw40dy178xlpddw65q9gf1h2186jcc3p4swinwggbllv8mk'],
  ['8a46c4eee4911eb842b1b2f144a9376be45a43d1da6b7af8cffa43a942177587', '11vm2x1ajhzsrzw7lsyss51mmr3b6yll9wdjn51bh7liwkpc8ila'],
];

test('alphabet has 32 symbols without e o t u', () => {
  assert.equal(ALPHABET.length, 32);
  for (const c of 'eotu') assert.ok(!ALPHABET.includes(c));
});

for (const [h, s] of VECTORS) {
  test(`encode/decode vector ${JSON.stringify(s)}`, () => {
    assert.equal(encode(hex(h)), s);
    assert.equal(toHex(decode(s)), h);
  });
}

test('encodedLength / decodedLength', () => {
  assert.equal(encodedLength(0), 0);
  assert.equal(encodedLength(1), 2);
  assert.equal(encodedLength(20), 32);
  assert.equal(encodedLength(32), 52);
  assert.equal(encodedLength(64), 103);
  assert.equal(decodedLength(32), 20);
  assert.equal(decodedLength(52), 32);
  assert.equal(decodedLength(103), 64);
  assert.equal(decodedLength(2), 1);
});

test('decode rejects characters outside the alphabet', () => {
  for (const bad of ['e', 'o', 't', 'u', 'A', '-', 'é']) {
    const s = '00bgd045z0d4icpbc2yyz4gx48ak44l' + bad;
    assert.throws(() => decode(s), /invalid nixbase32 character/);
  }
});

test('decode rejects invalid lengths', () => {
  assert.throws(() => decode('0'), /invalid nixbase32 length 1/);
  assert.throws(() => decode('0zz'), /invalid nixbase32 length 3/);
  assert.throws(() => decode('0'.repeat(33)), /invalid nixbase32 length/);
});

test('decode rejects non-zero trailing bits', () => {
  assert.throws(() => decode('zz'), /non-zero trailing bits/);
  assert.throws(() => decode('c0'), /non-zero trailing bits/);
  assert.equal(toHex(decode('7z')), 'ff');
  assert.throws(() => decode('8z'), /non-zero trailing bits/);
});

test('isValid', () => {
  assert.ok(isValid('0z'));
  assert.ok(isValid('0z', 1));
  assert.ok(!isValid('0z', 2));
  assert.ok(!isValid('zz'));
});

test('round trip for all lengths 0..70 with random bytes', () => {
  for (let n = 0; n <= 70; n++) {
    const b = new Uint8Array(n).map(() => Math.floor(Math.random() * 256));
    const s = encode(b);
    assert.equal(s.length, encodedLength(n));
    assert.equal(toHex(decode(s)), toHex(b));
  }
});

test('string order equals digest compared from the last byte backwards', () => {
  const a = new Uint8Array(20);
  const b = new Uint8Array(20);
  a[0] = 0xff; // least significant
  b[19] = 0x01; // most significant
  assert.ok(encode(a) < encode(b));
});
