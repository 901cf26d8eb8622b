import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  STORE_DIR,
  absolute,
  basename,
  compareStorePaths,
  compressHash,
  hashPart,
  isValidName,
  makeContentAddressedPath,
  makeFixedOutputPath,
  makeSourcePath,
  makeTextPath,
  newStorePath,
  parseAbsolute,
  parseBasename,
  sortStorePaths,
  validateName,
} from '../../src/nix/store-path.js';
import { CaHash, parseNarHash, sha256 } from '../../src/nix/hash.js';

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('STORE_DIR', () => assert.equal(STORE_DIR, '/nix/store'));

test('parse the net-tools basename (store.md §2)', () => {
  const sp = parseBasename('00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p20170221182432');
  assert.equal(toHex(sp.digest), '8a12321522fd91efbd60ebb2481af88580f61600');
  assert.equal(sp.name, 'net-tools-1.60_p20170221182432');
  assert.equal(basename(sp), '00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p20170221182432');
  assert.equal(absolute(sp), '/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p20170221182432');
  assert.equal(hashPart(sp), '00bgd045z0d4icpbc2yyz4gx48ak44la');
  assert.deepEqual(parseAbsolute(absolute(sp)), sp);
});

test('the tvix dummy path has 20 zero bytes', () => {
  const sp = parseBasename('00000000000000000000000000000000-dummy');
  assert.deepEqual(sp.digest, new Uint8Array(20));
  assert.equal(sp.name, 'dummy');
});

test('leading dot is accepted (HEAD), e.g. .gitignore', () => {
  const sp = parseBasename('fli4bwscgna7lpm7v5xgnjxrxh0yc7ra-.gitignore');
  assert.equal(sp.name, '.gitignore');
});

test('name validation', () => {
  for (const ok of ['a', 'A-Z_0+9?=.', '.a', '..a', '...', '.a-', 'a.-', 'x'.repeat(211)]) {
    assert.ok(isValidName(ok), ok);
    validateName(ok);
  }
  assert.throws(() => validateName(''), /must not be empty/);
  assert.throws(() => validateName('x'.repeat(212)), /212 characters, at most 211/);
  for (const bad of ['a b', 'a/b', 'a~', 'ä', 'a\0', 'a:b', 'a@b', 'a%b']) {
    assert.ok(!isValidName(bad), bad);
    assert.throws(() => validateName(bad), /character .* not allowed/, bad);
  }
  // Nix's checkName (issue 18, finding 8): these read as path components.
  for (const bad of ['.', '..', '.-', '.-foo', '..-', '..-foo']) {
    assert.ok(!isValidName(bad), bad);
    assert.throws(() => validateName(bad), /Nix refuses "\.", "\.\." and names starting with "\.-"/, bad);
  }
});

test('basename errors quote the input and say what is wrong', () => {
  assert.throws(() => parseBasename('00bgd045z0d4icpbc2yyz4gx48ak44la-'), /"00bgd045z0d4icpbc2yyz4gx48ak44la-": invalid length/);
  assert.throws(() => parseBasename('short'), /"short": invalid length/);
  assert.throws(() => parseBasename('00bgd045z0d4icpbc2yyz4gx48ak44le-foo'), /bad hash part: invalid nixbase32 character "e"/);
  assert.throws(() => parseBasename('00bgd045z0d4icpbc2yyz4gx48ak44la_foo'), /expected "-" after the 32-char hash/);
  assert.throws(() => parseBasename('00bgd045z0d4icpbc2yyz4gx48ak44la-foo bar'), /"00bgd045z0d4icpbc2yyz4gx48ak44la-foo bar".*character " " not allowed/);
  assert.throws(() => parseBasename('00bgd045z0d4icpbc2yyz4gx48ak44la-' + 'x'.repeat(212)), /at most 211/);
  // max length 244 is fine
  assert.equal(basename(parseBasename('00bgd045z0d4icpbc2yyz4gx48ak44la-' + 'x'.repeat(211))).length, 244);
});

test('absolute path errors', () => {
  const b = '00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools';
  assert.throws(() => parseAbsolute(b), /must start with "\/nix\/store\/"/);
  assert.throws(() => parseAbsolute('/nix/store//' + b), /sub-paths|must start/);
  assert.throws(() => parseAbsolute('/nix/store2/' + b), /must start with/);
  assert.throws(() => parseAbsolute('/gnu/store/' + b), /must start with/);
  assert.throws(() => parseAbsolute('nix/store/' + b), /must start with/);
  assert.throws(() => parseAbsolute(`/nix/store/${b}/bin/ls`), /sub-paths are not allowed/);
  assert.throws(() => parseAbsolute(`/nix/store/${b}/`), /sub-paths are not allowed/);
  assert.throws(() => parseAbsolute('/nix/store/'), /invalid length/);
});

test('newStorePath checks digest length and name', () => {
  assert.throws(() => newStorePath(new Uint8Array(19), 'a'), /20 bytes, got 19/);
  assert.throws(() => newStorePath(new Uint8Array(20), 'a b'), /not allowed/);
  assert.equal(newStorePath(new Uint8Array(20), 'a').name, 'a');
});

test('ordering is nixbase32 string order', () => {
  const names = [
    '00bgd045z0d4icpbc2yyz4gx48ak44la-b',
    '00bgd045z0d4icpbc2yyz4gx48ak44la-a',
    'zzbgd045z0d4icpbc2yyz4gx48ak44la-a',
    '10000000000000000000000000000000-a',
    '00000000000000000000000000000001-a',
    '00000000000000000000000000000000-dummy',
  ];
  const paths = names.map(parseBasename);
  const sorted = [...paths].sort(compareStorePaths).map(basename);
  assert.deepEqual(sorted, [...names].sort());
  assert.equal(sortStorePaths([...paths, ...paths]).length, names.length);
});

test('compressHash XOR-folds', () => {
  const h = new Uint8Array(32).map((_, i) => i);
  const c = compressHash(h, 20);
  for (let i = 0; i < 20; i++) assert.equal(c[i], i < 12 ? i ^ (i + 20) : i);
});

// store.md §2.1 verified vectors
test('text "bar" named foo', () => {
  const sp = makeTextPath('foo', sha256('bar'));
  assert.equal(basename(sp), 'vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo');
});

test('text referencing foo named baz', () => {
  const foo = parseAbsolute('/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo');
  const sp = makeTextPath('baz', sha256('/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo'), [foo]);
  assert.equal(basename(sp), '5xd714cbfnkz02h2vbsj4fm03x3f15nf-baz');
  assert.equal(
    basename(makeContentAddressedPath('baz', { type: CaHash.TEXT_SHA256, digest: sha256(absolute(foo)) }, [foo])),
    '5xd714cbfnkz02h2vbsj4fm03x3f15nf-baz',
  );
});

test('NAR-sha256 source path with a reference', () => {
  const nar = parseNarHash('sha256:1xqkzcb3909fp07qngljr4wcdnrh1gdam1m2n29i6hhrxlmkgkv1');
  const ref = parseAbsolute('/nix/store/dxwkwjzdaq7ka55pkk252gh32bgpmql4-foo');
  assert.equal(basename(makeFixedOutputPath('baz', 'nar', 'sha256', nar, [ref])), 's89y431zzhmdn3k8r96rvakryddkpv2v-baz');
  assert.equal(basename(makeSourcePath('baz', nar, [ref])), 's89y431zzhmdn3k8r96rvakryddkpv2v-baz');
  assert.equal(
    basename(makeContentAddressedPath('baz', { type: CaHash.NAR_SHA256, digest: nar }, [ref])),
    's89y431zzhmdn3k8r96rvakryddkpv2v-baz',
  );
  // references are sorted and deduplicated, as in Nix's StorePathSet
  assert.equal(basename(makeSourcePath('baz', nar, [ref, ref])), 's89y431zzhmdn3k8r96rvakryddkpv2v-baz');
  // self changes the path
  assert.notEqual(basename(makeSourcePath('baz', nar, [ref], true)), 's89y431zzhmdn3k8r96rvakryddkpv2v-baz');
});

test('NAR-sha1 fixed output named bar', () => {
  const d = hex('0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33');
  assert.equal(basename(makeFixedOutputPath('bar', 'nar', 'sha1', d)), 'mp57d33657rf34lzvlbpfa1gjfv5gmpg-bar');
  assert.equal(
    basename(makeContentAddressedPath('bar', { type: CaHash.NAR_SHA1, digest: d })),
    'mp57d33657rf34lzvlbpfa1gjfv5gmpg-bar',
  );
  // flat differs from recursive
  assert.notEqual(basename(makeFixedOutputPath('bar', 'flat', 'sha1', d)), 'mp57d33657rf34lzvlbpfa1gjfv5gmpg-bar');
});

test('tvix-store import of hello.txt', () => {
  const nar = hex('03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040');
  const sp = makeSourcePath('hello.txt', nar);
  assert.equal(basename(sp), '925f1jb1ajrypjbyq7rylwryqwizvhp0-hello.txt');
  assert.equal(toHex(sp.digest), 'e0c2fd23c73e73eaf3c17ec9ebb35461c9e08a48');
});

test('CA path errors', () => {
  const d = hex('0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33');
  const ref = parseBasename('00000000000000000000000000000000-dummy');
  assert.throws(() => makeFixedOutputPath('bar', 'nar', 'sha1', d, [ref]), /cannot have references/);
  assert.throws(() => makeFixedOutputPath('bar', 'flat', 'sha1', d, [], true), /cannot have references/);
  assert.throws(() => makeFixedOutputPath('bar', 'flat', 'sha256', d), /32 bytes, got 20/);
  assert.throws(() => makeTextPath('a b', new Uint8Array(32)), /not allowed/);
  assert.throws(() => makeContentAddressedPath('x', { type: CaHash.TEXT_SHA256, digest: new Uint8Array(32) }, [], true), /cannot reference itself/);
});
