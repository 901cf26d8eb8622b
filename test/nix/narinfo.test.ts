import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NarInfoError, parseNarInfo, renderNarInfo } from '../../src/nix/narinfo.js';
import type { NarInfo } from '../../src/nix/narinfo.js';
import { CaHash, parseNarHash } from '../../src/nix/hash.js';
import { basename, parseAbsolute, parseBasename } from '../../src/nix/store-path.js';
import { fingerprint, parsePublicKey, parseSecretKey, parseSignature, sign, verify } from '../../src/nix/signature.js';

const HELLO_NAR = parseNarHash('sha256:0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3');

const HELLO_TEXT = [
  'StorePath: /nix/store/925f1jb1ajrypjbyq7rylwryqwizvhp0-hello.txt',
  'URL: nar/0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3.nar',
  'Compression: none',
  'NarHash: sha256:0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3',
  'NarSize: 128',
  'References: ',
  'CA: fixed:r:sha256:0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3',
  '',
].join('\n');

const HELLO: NarInfo = {
  storePath: parseAbsolute('/nix/store/925f1jb1ajrypjbyq7rylwryqwizvhp0-hello.txt'),
  url: 'nar/0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3.nar',
  compression: 'none',
  narHash: HELLO_NAR,
  narSize: 128,
  references: [],
  signatures: [],
  ca: { type: CaHash.NAR_SHA256, digest: HELLO_NAR },
};

test('render the hello.txt example of store.md §6 exactly', () => {
  assert.equal(renderNarInfo(HELLO), HELLO_TEXT);
});

test('parse the hello.txt example', () => {
  assert.deepEqual(parseNarInfo(HELLO_TEXT), HELLO);
});

// The curl narinfo whose fingerprint/signature are in store.md §7 (URL,
// FileHash, FileSize and Deriver hash are made up for this test).
const CURL_TEXT = [
  'StorePath: /nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin',
  'URL: nar/1l0vqd0bnrj1kiabqma0rq5dwxfs3mlw2bfswlwjq1hgyxhx3nvm.nar.xz',
  'Compression: xz',
  'FileHash: sha256:1l0vqd0bnrj1kiabqma0rq5dwxfs3mlw2bfswlwjq1hgyxhx3nvm',
  'FileSize: 53480',
  'NarHash: sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0',
  'NarSize: 196040',
  'References: 0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0 6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115 j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12 yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n',
  'Deriver: 5rwxzi7pal3qhpsyfc16gzkh939q1np6-curl-7.82.0.drv',
  'System: x86_64-linux',
  'Sig: cache.nixos.org-1:TsTTb3WGTZKphvYdBHXwo6weVILmTytUjLB+vcX89fOjjRicCHmKA4RCPMVLkj6TMJ4GMX3HPVWRdD1hkeKZBQ==',
  '',
].join('\n');

test('parse a full narinfo, fingerprint it and verify its signature', () => {
  const ni = parseNarInfo(CURL_TEXT);
  assert.equal(basename(ni.storePath), 'syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin');
  assert.equal(ni.compression, 'xz');
  assert.equal(ni.fileSize, 53480);
  assert.equal(ni.fileHash?.length, 32);
  assert.equal(ni.narSize, 196040);
  assert.equal(ni.references.length, 4);
  assert.equal(ni.system, 'x86_64-linux');
  // Deriver is stored without ".drv" (like PathInfo.narinfo.deriver)
  assert.equal(ni.deriver?.name, 'curl-7.82.0');
  assert.equal(basename(ni.deriver!), '5rwxzi7pal3qhpsyfc16gzkh939q1np6-curl-7.82.0');
  assert.equal(ni.signatures.length, 1);
  assert.equal(ni.ca, undefined);
  const fp = fingerprint(ni.storePath, ni.narHash, ni.narSize, ni.references);
  assert.ok(verify(fp, ni.signatures[0], parsePublicKey('cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=')));
  // and renders back identically (field order of §6)
  assert.equal(renderNarInfo(ni), CURL_TEXT);
});

test('render with several signatures and a deriver; round trip', () => {
  const sk = parseSecretKey(
    'cache.example.com-1:cCta2MEsRNuYCgWYyeRXLyfoFpKhQJKn8gLMeXWAb7vIpRKKo/3JoxJ24OYa3DxT2JVV38KjK/1ywHWuMe2JEw==',
  );
  const fp = fingerprint(HELLO.storePath, HELLO.narHash, HELLO.narSize, HELLO.references);
  const ni: NarInfo = {
    ...HELLO,
    deriver: parseBasename('5rwxzi7pal3qhpsyfc16gzkh939q1np6-hello'),
    signatures: [sign(fp, sk), { name: 'other-1', data: new Uint8Array(64) }],
  };
  const text = renderNarInfo(ni);
  assert.match(text, /\nDeriver: 5rwxzi7pal3qhpsyfc16gzkh939q1np6-hello\.drv\nSig: cache\.example\.com-1:zazb8ZBx.*\nSig: other-1:A+=*\nCA: /);
  assert.deepEqual(parseNarInfo(text), ni);
});

test('missing Compression means bzip2; Compression line always rendered', () => {
  const text = HELLO_TEXT.replace('Compression: none\n', '');
  assert.equal(parseNarInfo(text).compression, 'bzip2');
  assert.match(renderNarInfo(parseNarInfo(text)), /\nCompression: bzip2\n/);
  assert.match(renderNarInfo(HELLO), /\nCompression: none\n/);
});

test('hex NarHash is accepted', () => {
  const text = HELLO_TEXT.replace(
    'NarHash: sha256:0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3',
    'NarHash: sha256:03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040',
  );
  assert.deepEqual(parseNarInfo(text).narHash, HELLO_NAR);
});

test('unknown keys are ignored; blank lines and missing final newline are fine', () => {
  const text = 'Foo: bar\n\n' + HELLO_TEXT.trimEnd() + '\nX-Whatever: 1';
  assert.deepEqual(parseNarInfo(text), HELLO);
});

test('References may be out of order and are kept as given', () => {
  const refs = 'yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n 0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0';
  const ni = parseNarInfo(HELLO_TEXT.replace('References: ', 'References: ' + refs));
  assert.deepEqual(ni.references.map(basename), refs.split(' '));
  // "References:" without the trailing space is tolerated as empty
  assert.deepEqual(parseNarInfo(HELLO_TEXT.replace('References: ', 'References:')).references, []);
});

function parseFails(text: string, re: RegExp): void {
  assert.throws(() => parseNarInfo(text), (e: unknown) => {
    assert.ok(e instanceof NarInfoError, String(e));
    assert.match(e.message, re);
    return true;
  });
}

test('required keys', () => {
  for (const key of ['StorePath', 'URL', 'NarHash', 'NarSize', 'References']) {
    const text = HELLO_TEXT.split('\n').filter((l) => !l.startsWith(key + ':')).join('\n');
    parseFails(text, new RegExp(`missing required key\\(s\\): ${key}`));
  }
  parseFails('', /missing required key\(s\): StorePath, URL, NarHash, NarSize, References/);
});

test('duplicate keys are errors, except Sig', () => {
  for (const line of HELLO_TEXT.split('\n').filter((l) => l !== '')) {
    const key = line.slice(0, line.indexOf(':'));
    parseFails(HELLO_TEXT + line + '\n', new RegExp(`duplicate key "${key}"`));
  }
  const sig = 'Sig: cache.nixos.org-1:TsTTb3WGTZKphvYdBHXwo6weVILmTytUjLB+vcX89fOjjRicCHmKA4RCPMVLkj6TMJ4GMX3HPVWRdD1hkeKZBQ==\n';
  assert.equal(parseNarInfo(HELLO_TEXT + sig + sig).signatures.length, 2);
});

test('Deriver must end in .drv', () => {
  parseFails(HELLO_TEXT + 'Deriver: 5rwxzi7pal3qhpsyfc16gzkh939q1np6-curl-7.82.0\n', /does not end in "\.drv"/);
  parseFails(HELLO_TEXT + 'Deriver: 5rwxzi7pal3qhpsyfc16gzkh939q1np6-.drv\n', /invalid length/);
  // only one .drv is stripped
  assert.equal(parseNarInfo(HELLO_TEXT + 'Deriver: 5rwxzi7pal3qhpsyfc16gzkh939q1np6-x.drv.drv\n').deriver?.name, 'x.drv');
});

test('malformed values', () => {
  parseFails(HELLO_TEXT + 'garbage\n', /line 8: expected "Key: value"/);
  parseFails(HELLO_TEXT.replace('NarSize: 128', 'NarSize:128'), /expected a space after "NarSize:"/);
  parseFails(HELLO_TEXT.replace('NarSize: 128', 'NarSize: 12x'), /NarSize "12x": expected a decimal number/);
  parseFails(HELLO_TEXT.replace('NarSize: 128', 'NarSize: -1'), /expected a decimal number/);
  parseFails(HELLO_TEXT.replace('NarSize: 128', 'NarSize: 99999999999999999999'), /too large/);
  parseFails(HELLO_TEXT.replace('NarHash: sha256:', 'NarHash: sha1:'), /line 4 \(NarHash\)/);
  parseFails(HELLO_TEXT.replace('StorePath: /nix/store/', 'StorePath: /gnu/store/'), /line 1 \(StorePath\).*must start with "\/nix\/store\/"/);
  parseFails(HELLO_TEXT.replace('References: ', 'References: /nix/store/925f1jb1ajrypjbyq7rylwryqwizvhp0-hello.txt'), /References/);
  parseFails(HELLO_TEXT + 'Sig: nocolon\n', /\(Sig\).*expected "<name>:<base64>"/);
  parseFails(HELLO_TEXT + 'Sig: bad name:AAAA\n', /may only contain/);
  parseFails(HELLO_TEXT.replace('CA: fixed:r:', 'CA: nope:r:'), /\(CA\).*must start with/);
  parseFails(HELLO_TEXT + 'FileSize: lots\n', /FileSize/);
});

test('render rejects values that would break the format', () => {
  assert.throws(() => renderNarInfo({ ...HELLO, url: 'a\nb' }), /line breaks/);
  assert.throws(() => renderNarInfo({ ...HELLO, narSize: -1 }), /NarSize/);
  assert.throws(() => renderNarInfo({ ...HELLO, narHash: new Uint8Array(20) }), /32-byte/);
});

test('signature parsed from narinfo keeps raw 64 bytes', () => {
  const ni = parseNarInfo(CURL_TEXT);
  assert.deepEqual(
    ni.signatures[0],
    parseSignature('cache.nixos.org-1:TsTTb3WGTZKphvYdBHXwo6weVILmTytUjLB+vcX89fOjjRicCHmKA4RCPMVLkj6TMJ4GMX3HPVWRdD1hkeKZBQ=='),
  );
});
