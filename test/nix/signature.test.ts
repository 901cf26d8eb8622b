import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  fingerprint,
  formatPublicKey,
  formatSecretKey,
  formatSignature,
  generateSecretKey,
  isValidKeyName,
  parsePublicKey,
  parseSecretKey,
  parseSignature,
  publicKeyOf,
  secretKeyFromSeed,
  sign,
  verify,
  verifyAny,
} from '../../src/nix/signature.js';
import { parseNarHash } from '../../src/nix/hash.js';
import { parseAbsolute } from '../../src/nix/store-path.js';

// store.md §7 vectors
const CURL_FP =
  '1;/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin;sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0;196040;/nix/store/0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0,/nix/store/6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115,/nix/store/j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12,/nix/store/yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n';
const CURL_SIG = 'cache.nixos.org-1:TsTTb3WGTZKphvYdBHXwo6weVILmTytUjLB+vcX89fOjjRicCHmKA4RCPMVLkj6TMJ4GMX3HPVWRdD1hkeKZBQ==';
const NIXOS_PUB = 'cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=';

const TVIX_SECRET =
  'cache.example.com-1:cCta2MEsRNuYCgWYyeRXLyfoFpKhQJKn8gLMeXWAb7vIpRKKo/3JoxJ24OYa3DxT2JVV38KjK/1ywHWuMe2JEw==';
const TVIX_PUB = 'cache.example.com-1:yKUSiqP9yaMSduDmGtw8U9iVVd/Coyv9csB1rjHtiRM=';
const PERL_FP =
  '1;/nix/store/0vpqfxbkx0ffrnhbws6g9qwhmliksz7f-perl-HTTP-Cookies-6.01;sha256:0h1bm4sj1cnfkxgyhvgi8df1qavnnv94sd0v09wcrm971602shfg;22552;';
const PERL_SIG =
  'cache.example.com-1:s0RTa24/7x5lstmy93KSUW/rD0LR8M0VqMd1t2otpglPhPtJerWS8UNGn+xRRSMOfo/5Kc7gy+mPSW++e4twAg==';
const HELLO_FP =
  '1;/nix/store/925f1jb1ajrypjbyq7rylwryqwizvhp0-hello.txt;sha256:0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3;128;';
const HELLO_SIG =
  'cache.example.com-1:zazb8ZBxSMPJW8uW+o9rJwknF02nnZdTddlorI/WIr6BIjKVOnx1DziLlgPppwc8xT2QGfRF+V/fWcto5WnACw==';

test('fingerprint of the cache.nixos.org curl narinfo', () => {
  const refs = [
    '/nix/store/0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0',
    '/nix/store/6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115',
    '/nix/store/j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12',
    '/nix/store/yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n',
  ].map(parseAbsolute);
  const fp = fingerprint(
    parseAbsolute('/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin'),
    parseNarHash('sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0'),
    196040,
    refs,
  );
  assert.equal(fp, CURL_FP);
  // references are put in nixbase32 order (as Nix does)
  assert.equal(
    fingerprint(
      parseAbsolute('/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin'),
      parseNarHash('sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0'),
      196040,
      [...refs].reverse(),
    ),
    CURL_FP,
  );
});

test('fingerprint with no references ends in ";"', () => {
  const fp = fingerprint(
    parseAbsolute('/nix/store/0vpqfxbkx0ffrnhbws6g9qwhmliksz7f-perl-HTTP-Cookies-6.01'),
    parseNarHash('sha256:0h1bm4sj1cnfkxgyhvgi8df1qavnnv94sd0v09wcrm971602shfg'),
    22552,
    [],
  );
  assert.equal(fp, PERL_FP);
  assert.equal(
    fingerprint(
      parseAbsolute('/nix/store/925f1jb1ajrypjbyq7rylwryqwizvhp0-hello.txt'),
      parseNarHash('sha256:0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3'),
      128,
      [],
    ),
    HELLO_FP,
  );
});

test('the cache.nixos.org signature verifies', () => {
  const pk = parsePublicKey(NIXOS_PUB);
  const sig = parseSignature(CURL_SIG);
  assert.equal(sig.name, 'cache.nixos.org-1');
  assert.equal(sig.data.length, 64);
  assert.ok(verify(CURL_FP, sig, pk));
  assert.ok(verify(new TextEncoder().encode(CURL_FP), sig, pk));
  assert.ok(!verify(CURL_FP.replace('196040', '196041'), sig, pk));
  // name must match
  assert.ok(!verify(CURL_FP, { ...sig, name: 'other-1' }, pk));
  // a flipped bit fails
  const bad = new Uint8Array(sig.data);
  bad[0] ^= 1;
  assert.ok(!verify(CURL_FP, { name: sig.name, data: bad }, pk));
  assert.ok(!verify(CURL_FP, { name: sig.name, data: sig.data.subarray(0, 63) }, pk));
  assert.ok(verifyAny(CURL_FP, [{ ...sig, name: 'x' }, sig], [parsePublicKey(TVIX_PUB), pk]));
  assert.ok(!verifyAny(CURL_FP, [sig], [parsePublicKey(TVIX_PUB)]));
});

test('tvix test key: public half and signatures reproduced exactly', () => {
  const sk = parseSecretKey(TVIX_SECRET);
  assert.equal(sk.name, 'cache.example.com-1');
  assert.equal(formatPublicKey(publicKeyOf(sk)), TVIX_PUB);
  assert.equal(formatSecretKey(sk), TVIX_SECRET);
  assert.equal(formatSignature(sign(PERL_FP, sk)), PERL_SIG);
  assert.equal(formatSignature(sign(HELLO_FP, sk)), HELLO_SIG);
  const pk = parsePublicKey(TVIX_PUB);
  assert.ok(verify(PERL_FP, parseSignature(PERL_SIG), pk));
  assert.ok(verify(HELLO_FP, parseSignature(HELLO_SIG), publicKeyOf(sk)));
  // key files usually end in a newline
  assert.equal(parseSecretKey(TVIX_SECRET + '\n').name, 'cache.example.com-1');
  assert.deepEqual(secretKeyFromSeed(sk.name, sk.seed).publicKey, sk.publicKey);
});

test('generated keys round-trip', () => {
  const sk = generateSecretKey('my-cache.local-1');
  const sk2 = parseSecretKey(formatSecretKey(sk));
  const sig = sign(HELLO_FP, sk2);
  assert.ok(verify(HELLO_FP, sig, parsePublicKey(formatPublicKey(publicKeyOf(sk)))));
});

test('secret key errors', () => {
  assert.throws(() => parseSecretKey('no-colon'), /expected "<name>:<base64>"/);
  assert.throws(() => parseSecretKey(':' + TVIX_SECRET.split(':')[1]), /empty key name/);
  assert.throws(() => parseSecretKey('bad name:' + TVIX_SECRET.split(':')[1]), /key name "bad name" may only contain/);
  assert.throws(() => parseSecretKey('k:' + TVIX_PUB.split(':')[1]), /expected 64 bytes after the name, got 32/);
  assert.throws(() => parseSecretKey('k:%%%%'), /invalid base64/);
  // public half that does not match the seed
  const b = Buffer.from(TVIX_SECRET.split(':')[1], 'base64');
  b[40] ^= 1;
  assert.throws(() => parseSecretKey('k:' + b.toString('base64')), /public half does not match/);
  // errors do not leak the key material
  try {
    parseSecretKey('k:' + b.toString('base64'));
  } catch (e) {
    assert.ok(!(e as Error).message.includes(b.toString('base64').slice(0, 20)));
  }
});

test('public key errors', () => {
  assert.throws(() => parsePublicKey('cache.nixos.org-1'), /expected "<name>:<base64>"/);
  assert.throws(() => parsePublicKey(TVIX_SECRET), /expected 32 bytes after the name, got 64/);
  assert.throws(() => parsePublicKey('a_b:' + NIXOS_PUB.split(':')[1]), /may only contain/);
  assert.throws(() => parsePublicKey('k:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY'), /invalid base64/);
});

test('signature parse/format', () => {
  const sig = parseSignature(CURL_SIG);
  assert.equal(formatSignature(sig), CURL_SIG);
  assert.equal(CURL_SIG.split(':')[1].length, 88);
  assert.throws(() => parseSignature('cache.nixos.org-1:AAAA'), /expected 64 bytes after the name, got 3/);
  assert.throws(() => parseSignature('TsTTb3WGTZKphvYdBHXwo6weVILmTytUjLB'), /expected "<name>:<base64>"/);
  assert.throws(() => parseSignature('a/b:' + CURL_SIG.split(':')[1]), /may only contain/);
  assert.throws(() => formatSignature({ name: 'x', data: new Uint8Array(10) }), /64 bytes, got 10/);
  assert.ok(isValidKeyName('cache.nixos.org-1'));
  assert.ok(!isValidKeyName(''));
  assert.ok(!isValidKeyName('a:b'));
});
