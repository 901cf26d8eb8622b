import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findAttrsJson, parseAttrsJson } from '../../src/closure/structured-attrs.js';
import { ClosureError } from '../../src/closure/closure.js';
import { absolute, basename } from '../../src/nix/store-path.js';
import { CaHash, formatHexHash, formatSri } from '../../src/nix/hash.js';

const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

// closure.md §1.1, verbatim.
const EXAMPLE = `[{"closureSize":1828984,"narHash":"sha256:11vm2x1ajhzsrzw7lsyss51mmr3b6yll9wdjn51bh7liwkpc8ila","narSize":1828984,"path":"/nix/store/7n0mbqydcipkpbxm24fab066lxk68aqk-libunistring-1.1","references":["/nix/store/7n0mbqydcipkpbxm24fab066lxk68aqk-libunistring-1.1"]},
 {"closureSize":32696176,"narHash":"sha256:0alzbhjxdcsmr1pk7z0bdh46r2xpq3xs3k9y82bi4bx5pklcvw5x","narSize":226560,"path":"/nix/store/dbghhbq1x39yxgkv3vkgfwbxrmw9nfzi-hello-2.12.1","references":["/nix/store/dbghhbq1x39yxgkv3vkgfwbxrmw9nfzi-hello-2.12.1","/nix/store/ddwyrxif62r8n6xclvskjyy6szdhvj60-glibc-2.39-5"]},
 {"closureSize":32469616,"narHash":"sha256:1zw5p05fh0k836ybfxkskv8apcv2m3pm2wa6y90wqn5w5kjyj13c","narSize":30119936,"path":"/nix/store/ddwyrxif62r8n6xclvskjyy6szdhvj60-glibc-2.39-5","references":["/nix/store/ddwyrxif62r8n6xclvskjyy6szdhvj60-glibc-2.39-5","/nix/store/rxganm4ibf31qngal3j3psp20mak37yy-xgcc-13.2.0-libgcc","/nix/store/s32cldbh9pfzd9z82izi12mdlrw0yf8q-libidn2-2.3.7"]},
 {"closureSize":159560,"narHash":"sha256:10q8iyvfmpfck3yiisnj1j8vp6lq3km17r26sr95zpdf9mgmk69s","narSize":159560,"path":"/nix/store/rxganm4ibf31qngal3j3psp20mak37yy-xgcc-13.2.0-libgcc","references":[]},
 {"closureSize":2190120,"narHash":"sha256:1cv997nzxbd91jhmzwnhxa1ahlzp5ffli8m4a5npcq8zg0vb1kwg","narSize":361136,"path":"/nix/store/s32cldbh9pfzd9z82izi12mdlrw0yf8q-libidn2-2.3.7","references":["/nix/store/7n0mbqydcipkpbxm24fab066lxk68aqk-libunistring-1.1","/nix/store/s32cldbh9pfzd9z82izi12mdlrw0yf8q-libidn2-2.3.7"]}]`;

/** A realistic .attrs.json around the example: other attributes, keys in alphabetical order. */
function attrsJson(key = 'closure', closure = EXAMPLE): string {
  return `{"__structuredAttrs":true,"builder":"/bin/sh",${JSON.stringify(key)}:${closure},"exportReferencesGraph":{${JSON.stringify(key)}:["/nix/store/dbghhbq1x39yxgkv3vkgfwbxrmw9nfzi-hello-2.12.1"]},"name":"run-vm","outputs":{"out":"/nix/store/1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9-run-vm"}}`;
}

test('the closure.md §1.1 example parses, with the derived values listed there', () => {
  const c = parseAttrsJson(attrsJson(), { file: '.attrs.json' });
  assert.equal(c.source, '.attrs.json');
  assert.equal(c.entries.length, 5);
  assert.deepEqual(
    c.entries.map((e) => basename(e.path)),
    [
      '7n0mbqydcipkpbxm24fab066lxk68aqk-libunistring-1.1',
      'dbghhbq1x39yxgkv3vkgfwbxrmw9nfzi-hello-2.12.1',
      'ddwyrxif62r8n6xclvskjyy6szdhvj60-glibc-2.39-5',
      'rxganm4ibf31qngal3j3psp20mak37yy-xgcc-13.2.0-libgcc',
      's32cldbh9pfzd9z82izi12mdlrw0yf8q-libidn2-2.3.7',
    ],
  );
  const [first] = c.entries;
  assert.equal(toHex(first.narHash!), '8a46c4eee4911eb842b1b2f144a9376be45a43d1da6b7af8cffa43a942177587');
  assert.equal(first.narSize, 1828984);
  assert.deepEqual(first.signatures, []);
  assert.equal(first.deriver, undefined);
  assert.equal(first.ca, undefined);

  const glibc = c.entries[2];
  assert.equal(glibc.path.name, 'glibc-2.39-5');
  assert.equal(glibc.narSize, 30119936);
  const refs = glibc.references.map((r) => toHex(r.digest));
  assert.equal(refs.length, 3);
  assert.match(refs[0], /^c0c80ddb.*796b$/);
  assert.match(refs[1], /^de9f3155.*5ecf$/);
  assert.match(refs[2], /^18390f78.*c4d0$/);
  assert.deepEqual(
    glibc.references.map((r) => r.name),
    ['glibc-2.39-5', 'xgcc-13.2.0-libgcc', 'libidn2-2.3.7'],
  );
  assert.deepEqual(c.entries[3].references, []);

  // closureSize is not kept, but it is consistent in the example: check it by hand.
  const raw = JSON.parse(EXAMPLE) as { path: string; narSize: number; closureSize: number; references: string[] }[];
  const byPath = new Map(raw.map((r) => [r.path, r]));
  for (const r of raw) {
    const seen = new Set<string>();
    const visit = (p: string) => {
      if (seen.has(p)) return;
      seen.add(p);
      for (const q of byPath.get(p)!.references) visit(q);
    };
    visit(r.path);
    assert.equal([...seen].reduce((s, p) => s + byPath.get(p)!.narSize, 0), r.closureSize, r.path);
  }
});

test('the example as the bare array under a custom key; the default key is closure', () => {
  const c = parseAttrsJson(`{"blub":${EXAMPLE}}`, { key: 'blub', file: 'f' });
  assert.equal(c.entries.length, 5);
  assert.throws(() => parseAttrsJson(`{"blub":${EXAMPLE}}`, { file: 'f' }), (e: unknown) => {
    assert.ok(e instanceof ClosureError);
    assert.match(e.message, /^f: no top-level key "closure"; top-level keys present: "blub"/);
    return true;
  });
});

const P = '/nix/store/7n0mbqydcipkpbxm24fab066lxk68aqk-libunistring-1.1';
const NIX32 = 'sha256:11vm2x1ajhzsrzw7lsyss51mmr3b6yll9wdjn51bh7liwkpc8ila';
const HASH_HEX = '8a46c4eee4911eb842b1b2f144a9376be45a43d1da6b7af8cffa43a942177587';

function one(fields: Record<string, unknown>): string {
  return JSON.stringify({ closure: [{ path: P, narHash: NIX32, narSize: 12, references: [P], ...fields }] });
}

test('narHash may also be SRI or hex', () => {
  const h = new Uint8Array(Buffer.from(HASH_HEX, 'hex'));
  for (const s of [NIX32, formatSri(h), formatHexHash(h)]) {
    const c = parseAttrsJson(one({ narHash: s }), { file: 'f' });
    assert.equal(toHex(c.entries[0].narHash!), HASH_HEX, s);
  }
});

test('valid, ca, closureSize and unknown keys', () => {
  for (const extra of [{}, { valid: true }, { ca: null }, { closureSize: 12 }, { registrationTime: 5, whatever: [1, { a: 2 }] }]) {
    const c = parseAttrsJson(one(extra), { file: 'f' });
    assert.equal(c.entries[0].ca, undefined, JSON.stringify(extra));
    assert.equal(c.entries[0].narSize, 12);
  }
  const nar = parseAttrsJson(one({ ca: 'fixed:r:sha256:11vm2x1ajhzsrzw7lsyss51mmr3b6yll9wdjn51bh7liwkpc8ila' }), { file: 'f' });
  assert.equal(nar.entries[0].ca!.type, CaHash.NAR_SHA256);
  assert.equal(toHex(nar.entries[0].ca!.digest), HASH_HEX);
  const text = parseAttrsJson(one({ ca: `text:sha256:${HASH_HEX}` }), { file: 'f' });
  assert.equal(text.entries[0].ca!.type, CaHash.TEXT_SHA256);
  const flat = parseAttrsJson(one({ ca: 'fixed:sha1:' + '00'.repeat(20) }), { file: 'f' });
  assert.equal(flat.entries[0].ca!.type, CaHash.FLAT_SHA1);
  assert.equal(flat.entries[0].ca!.digest.length, 20);
});

test('references are sorted in nixbase32 order and deduplicated; narSize 0 and 2^53-1 are fine', () => {
  const glibc = '/nix/store/ddwyrxif62r8n6xclvskjyy6szdhvj60-glibc-2.39-5';
  const text = JSON.stringify({
    closure: [
      { path: P, narHash: NIX32, narSize: 0, references: [] },
      { path: glibc, narHash: NIX32, narSize: Number.MAX_SAFE_INTEGER, references: [glibc, P, glibc, P] },
    ],
  });
  const c = parseAttrsJson(text, { file: 'f' });
  assert.deepEqual(c.entries[1].references.map(absolute), [P, glibc]);
  assert.equal(c.entries[0].narSize, 0);
  assert.equal(c.entries[1].narSize, Number.MAX_SAFE_INTEGER);
});

test('an empty closure array is accepted', () => {
  assert.deepEqual(parseAttrsJson('{"closure":[]}', { file: 'f' }).entries, []);
});

test('findAttrsJson: NIX_ATTRS_JSON_FILE if it exists, else $NIX_BUILD_TOP/.attrs.json, else undefined', () => {
  const dir = mkdtempSync(join(tmpdir(), 'attrs-'));
  try {
    const top = join(dir, 'build');
    mkdirSync(top);
    const direct = join(dir, 'direct.json');
    const fallback = join(top, '.attrs.json');
    const missing = join(dir, 'host', 'build', '.attrs.json'); // Nix 2.8 sandbox: the host path

    assert.equal(findAttrsJson({}), undefined);
    assert.equal(findAttrsJson({ NIX_ATTRS_JSON_FILE: missing, NIX_BUILD_TOP: top }), undefined);

    writeFileSync(fallback, '{}');
    assert.equal(findAttrsJson({ NIX_BUILD_TOP: top }), fallback);
    assert.equal(findAttrsJson({ NIX_ATTRS_JSON_FILE: missing, NIX_BUILD_TOP: top }), fallback);
    assert.equal(findAttrsJson({ NIX_ATTRS_JSON_FILE: '', NIX_BUILD_TOP: top }), fallback);
    // a directory is not the file
    assert.equal(findAttrsJson({ NIX_ATTRS_JSON_FILE: dir, NIX_BUILD_TOP: top }), fallback);

    writeFileSync(direct, '{}');
    assert.equal(findAttrsJson({ NIX_ATTRS_JSON_FILE: direct, NIX_BUILD_TOP: top }), direct);
    assert.equal(findAttrsJson({ NIX_ATTRS_JSON_FILE: direct }), direct);

    rmSync(fallback);
    assert.equal(findAttrsJson({ NIX_BUILD_TOP: top }), undefined);
    assert.equal(findAttrsJson({ NIX_ATTRS_JSON_FILE: direct, NIX_BUILD_TOP: top }), direct);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
