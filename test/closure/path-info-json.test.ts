import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePathInfoJson } from '../../src/closure/path-info-json.js';
import { CaHash, formatSri } from '../../src/nix/hash.js';
import { absolute, parseAbsolute } from '../../src/nix/store-path.js';
import { fingerprint, formatSignature, generateSecretKey, publicKeyOf, sign, verify } from '../../src/nix/signature.js';

const HELLO = '/nix/store/dbghhbq1x39yxgkv3vkgfwbxrmw9nfzi-hello-2.12.1';
const GLIBC = '/nix/store/ddwyrxif62r8n6xclvskjyy6szdhvj60-glibc-2.39-5';
const HELLO_DRV = '/nix/store/s32cldbh9pfzd9z82izi12mdlrw00000-hello-2.12.1.drv';
const H1 = new Uint8Array(32).fill(1);
const H2 = new Uint8Array(32).fill(2);

const key = generateSecretKey('cache.example.org-1');
const helloSig = sign(fingerprint(parseAbsolute(HELLO), H1, 226560, [parseAbsolute(HELLO), parseAbsolute(GLIBC)]), key);

// What Nix 2.8 prints for `nix path-info --json --recursive`.
const helloInfo = {
  deriver: HELLO_DRV,
  narHash: formatSri(H1),
  narSize: 226560,
  references: [HELLO, GLIBC],
  registrationTime: 1700000000,
  signatures: [formatSignature(helloSig)],
  ultimate: false,
  valid: true,
};
const glibcInfo = {
  ca: 'fixed:r:sha256:1zw5p05fh0k836ybfxkskv8apcv2m3pm2wa6y90wqn5w5kjyj13c',
  narHash: formatSri(H2),
  narSize: 30119936,
  references: [GLIBC],
  registrationTime: 1700000000,
  closureSize: 30119936,
};

function check(c: ReturnType<typeof parsePathInfoJson>): void {
  assert.equal(c.source, 'pi.json');
  assert.deepEqual(c.entries.map((e) => absolute(e.path)), [HELLO, GLIBC]);
  const [hello, glibc] = c.entries;
  assert.deepEqual(hello.narHash, H1);
  assert.equal(hello.narSize, 226560);
  assert.deepEqual(hello.references.map(absolute), [HELLO, GLIBC]);
  assert.equal(absolute(hello.deriver!), HELLO_DRV);
  assert.equal(hello.signatures.length, 1);
  assert.equal(hello.signatures[0].name, 'cache.example.org-1');
  assert.deepEqual(hello.signatures[0].data, helloSig.data);
  assert.ok(verify(fingerprint(hello.path, hello.narHash!, hello.narSize!, hello.references), hello.signatures[0], publicKeyOf(key)));
  assert.equal(hello.ca, undefined);
  assert.deepEqual(glibc.narHash, H2);
  assert.equal(glibc.ca!.type, CaHash.NAR_SHA256);
  assert.equal(glibc.deriver, undefined);
  assert.deepEqual(glibc.signatures, []);
}

test('array shape (Nix < 2.19)', () => {
  const text = JSON.stringify([
    { path: HELLO, ...helloInfo },
    { path: GLIBC, ...glibcInfo },
  ]);
  check(parsePathInfoJson(text, { file: 'pi.json' }));
});

test('object keyed by path (Nix ≥ 2.19), with null deriver/ca, and with or without a path inside', () => {
  const text = JSON.stringify({
    [HELLO]: { ...helloInfo, ca: null },
    [GLIBC]: { path: GLIBC, deriver: null, signatures: [], ...glibcInfo },
  });
  check(parsePathInfoJson(text, { file: 'pi.json' }));
});

test('empty output is an empty closure', () => {
  assert.deepEqual(parsePathInfoJson('[]', { file: 'pi.json' }).entries, []);
  assert.deepEqual(parsePathInfoJson('{}', { file: 'pi.json' }).entries, []);
});
