import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLegacyClosure } from '../../src/closure/legacy.js';
import { absolute } from '../../src/nix/store-path.js';

const UNISTRING = '/nix/store/7n0mbqydcipkpbxm24fab066lxk68aqk-libunistring-1.1';
const HELLO = '/nix/store/dbghhbq1x39yxgkv3vkgfwbxrmw9nfzi-hello-2.12.1';
const GLIBC = '/nix/store/ddwyrxif62r8n6xclvskjyy6szdhvj60-glibc-2.39-5';
const LIBGCC = '/nix/store/rxganm4ibf31qngal3j3psp20mak37yy-xgcc-13.2.0-libgcc';
const IDN2 = '/nix/store/s32cldbh9pfzd9z82izi12mdlrw0yf8q-libidn2-2.3.7';

// The closure of closure.md §1.1 as Nix writes it without structured attrs (§1.2).
const LEGACY = [
  UNISTRING, '', '1', UNISTRING,
  HELLO, '', '2', HELLO, GLIBC,
  GLIBC, '', '3', GLIBC, LIBGCC, IDN2,
  LIBGCC, '', '0',
  IDN2, '', '2', UNISTRING, IDN2,
].join('\n') + '\n';

test('the hello closure in the legacy format', () => {
  const c = parseLegacyClosure(LEGACY, { file: 'closure' });
  assert.equal(c.source, 'closure');
  assert.deepEqual(c.entries.map((e) => absolute(e.path)), [UNISTRING, HELLO, GLIBC, LIBGCC, IDN2]);
  for (const e of c.entries) {
    assert.equal(e.narHash, undefined);
    assert.equal(e.narSize, undefined);
    assert.equal(e.deriver, undefined);
    assert.equal(e.ca, undefined);
    assert.deepEqual(e.signatures, []);
    assert.ok(!('narHash' in e) && !('narSize' in e));
  }
  assert.deepEqual(c.entries[2].references.map(absolute), [GLIBC, LIBGCC, IDN2]);
  assert.deepEqual(
    c.entries[2].references.map((r) => Buffer.from(r.digest).toString('hex').slice(0, 8)),
    ['c0c80ddb', 'de9f3155', '18390f78'],
  );
  assert.deepEqual(c.entries[3].references, []);
});

test('a deriver line with a .drv path is kept; no trailing newline is fine; references get sorted', () => {
  const drv = '/nix/store/0alzbhjxdcsmr1pk7z0bdh46r2xp00aa-hello-2.12.1.drv';
  const text = [LIBGCC, drv, '0', IDN2, '', '3', IDN2, LIBGCC, IDN2].join('\n');
  const c = parseLegacyClosure(text, { file: 'graph' });
  assert.equal(absolute(c.entries[0].deriver!), drv);
  assert.equal(c.entries[0].deriver!.name, 'hello-2.12.1.drv');
  assert.deepEqual(c.entries[1].references.map(absolute), [LIBGCC, IDN2]);
});

test('an empty file is an empty closure', () => {
  assert.deepEqual(parseLegacyClosure('', { file: 'closure' }).entries, []);
});
