// Checks that the real-Nix fixture for `nix-castore copy` tests is what the
// tests expect (test/helpers/copy-fixtures.ts, test/fixtures/copy-closure.nix):
// the closure, Nix's own .attrs.json and legacy closure file, the 100 MiB leaf
// and the self-referencing tree.
import assert from 'node:assert/strict';
import { open, lstat, readFile, readlink, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatNix32, parseNarHash } from '../../src/nix/hash.js';
import { BIG_FILE_SIZE, copyFixture, deleteCopyFixture, type CopyFixture } from '../helpers/copy-fixtures.js';
import { nixPathInfo, runNix, type NixPathInfo } from '../helpers/nix.js';

function sorted(xs: Iterable<string>): string[] {
  return [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

interface LegacyEntry {
  path: string;
  deriver: string;
  references: string[];
}

/** Parses the legacy exportReferencesGraph file (closure.md §1.2). */
function parseLegacyClosure(text: string): LegacyEntry[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const out: LegacyEntry[] = [];
  let i = 0;
  while (i < lines.length) {
    const path = lines[i++];
    const deriver = lines[i++];
    const countLine = lines[i++];
    assert.ok(path !== undefined && deriver !== undefined && countLine !== undefined, `truncated entry at line ${i}`);
    assert.match(countLine, /^\d+$/, `reference count of ${path}`);
    const n = Number(countLine);
    const references = lines.slice(i, i + n);
    assert.equal(references.length, n, `truncated references of ${path}`);
    i += n;
    out.push({ path, deriver, references });
  }
  return out;
}

let timedDefault: { fixture: CopyFixture; ms: number } | undefined;

async function fixture(): Promise<CopyFixture> {
  if (timedDefault === undefined) {
    const t0 = performance.now();
    const f = await copyFixture();
    timedDefault = { fixture: f, ms: performance.now() - t0 };
  }
  return timedDefault.fixture;
}

async function pathInfos(f: CopyFixture): Promise<Map<string, NixPathInfo>> {
  const infos = await nixPathInfo(f.top, { recursive: true, closureSize: true });
  return new Map(infos.map((i) => [i.path, i]));
}

test('copyFixture(): builds and caches per salt', async (t) => {
  const f = await fixture();
  t.diagnostic(`copyFixture() took ${timedDefault!.ms.toFixed(0)} ms (0 builds if the store already had salt "1")`);
  assert.equal(await copyFixture(), f, 'same object for the same salt');
  assert.equal(await copyFixture('1'), f, 'default salt is "1"');
  assert.equal(f.top, f.paths.top);
  for (const [k, p] of Object.entries(f.paths)) {
    assert.match(p, new RegExp(`^/nix/store/[0-9a-df-np-sv-z]{32}-nix-castore-copy-${k}$`), k);
  }
});

test('the closure of top is exactly `closure`: the six fixture paths, sorted', async () => {
  const f = await fixture();
  const { stdout } = await runNix('nix-store', ['-qR', f.top]);
  const fromNix = stdout.toString('utf8').split('\n').filter(Boolean);
  assert.deepEqual(f.closure, sorted(fromNix));
  assert.deepEqual(f.closure, sorted(Object.values(f.paths)));
  assert.equal(f.closure.length, 6);
  assert.deepEqual(f.closure, sorted(f.closure));
});

test('references: top -> everything, middle -> big, symlink -> file, tree -> itself, big/file -> none', async () => {
  const f = await fixture();
  const infos = await pathInfos(f);
  const refs = (p: string) => sorted(infos.get(p)?.references ?? assert.fail(`no path info for ${p}`));
  const { big, tree, file, symlink, middle, top } = f.paths;
  assert.deepEqual(refs(top), sorted([big, tree, file, symlink, middle]));
  assert.deepEqual(refs(middle), [big]);
  assert.deepEqual(refs(symlink), [file]);
  assert.deepEqual(refs(tree), [tree], 'tree refers to itself (only)');
  assert.deepEqual(refs(big), []);
  assert.deepEqual(refs(file), []);
});

test('attrsJsonFile: Nix\'s .attrs.json, whose `closure` matches nix path-info --json --recursive top', async () => {
  const f = await fixture();
  assert.ok((await lstat(f.attrsJsonFile)).isFile(), 'attrsJsonFile is a regular file');
  const attrs = JSON.parse(await readFile(f.attrsJsonFile, 'utf8')) as Record<string, unknown>;
  assert.deepEqual(attrs.outputs, { out: f.attrsJsonFile }, 'outputs.out is the capture\'s own path');
  assert.deepEqual(attrs.exportReferencesGraph, { closure: [f.top] });

  const closure = attrs.closure as Array<Record<string, unknown>>;
  assert.ok(Array.isArray(closure), '.attrs.json has a top-level `closure` array');
  assert.deepEqual(
    closure.map((e) => e.path),
    f.closure,
    'entries: every closure path, sorted',
  );

  const infos = await pathInfos(f);
  assert.equal(infos.size, closure.length);
  let first = true;
  for (const e of closure) {
    const path = e.path as string;
    const info = infos.get(path) ?? assert.fail(`nix path-info does not list ${path}`);
    assert.match(e.narHash as string, /^sha256:[0-9a-df-np-sv-z]{52}$/, `${path}: narHash is sha256:<nix32>`);
    assert.match(info.narHash ?? '', /^sha256-/, `${path}: path-info narHash is SRI`);
    assert.equal(e.narHash, formatNix32(parseNarHash(info.narHash!)), `${path}: narHash`);
    if (first) {
      // cross-check the SRI -> nix32 conversion with Nix itself, once
      const { stdout } = await runNix('nix', ['hash', 'to-base32', info.narHash!]);
      assert.equal(`sha256:${stdout.toString('utf8').trim()}`, e.narHash, `${path}: nix hash to-base32`);
      first = false;
    }
    assert.equal(e.narSize, info.narSize, `${path}: narSize`);
    assert.equal(e.closureSize, info.closureSize, `${path}: closureSize`);
    assert.deepEqual(e.references, sorted(info.references ?? []), `${path}: references`);
    assert.deepEqual(e.references, sorted(e.references as string[]), `${path}: references sorted`);
    assert.ok(e.ca === undefined || e.ca === null, `${path}: not content-addressed`);
    for (const k of ['deriver', 'registrationTime', 'signatures']) {
      assert.ok(!(k in e), `${path}: no ${k} in exportReferencesGraph output`);
    }
  }
  const big = closure.find((e) => e.path === f.paths.big)!;
  assert.ok((big.narSize as number) > BIG_FILE_SIZE, 'big\'s narSize covers the 100 MiB file');
});

test('legacyClosureFile: the legacy `closure` file lists every path with its references', async () => {
  const f = await fixture();
  assert.ok((await lstat(f.legacyClosureFile)).isFile(), 'legacyClosureFile is a regular file');
  const entries = parseLegacyClosure(await readFile(f.legacyClosureFile, 'utf8'));
  assert.deepEqual(
    entries.map((e) => e.path),
    f.closure,
  );
  const infos = await pathInfos(f);
  for (const e of entries) {
    assert.equal(e.deriver, '', `${e.path}: empty deriver line`);
    assert.deepEqual(sorted(e.references), sorted(infos.get(e.path)?.references ?? []), `${e.path}: references`);
  }
});

test('big: a 100 MiB file of non-trivial content and a small file', async () => {
  const f = await fixture();
  const bin = join(f.paths.big, 'big.bin');
  const st = await lstat(bin);
  assert.ok(st.isFile());
  assert.equal(st.size, BIG_FILE_SIZE);
  const fh = await open(bin, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (const pos of [0, BIG_FILE_SIZE - buf.length]) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      assert.equal(bytesRead, buf.length);
      const zeros = buf.reduce((n, b) => n + (b === 0 ? 1 : 0), 0);
      assert.ok(zeros < buf.length / 64, `mostly non-zero at ${pos} (${zeros} zero bytes)`);
      assert.notDeepEqual(buf.subarray(0, 4096), buf.subarray(4096, 8192), 'not a short repeating pattern');
    }
  } finally {
    await fh.close();
  }
  assert.match(await readFile(join(f.paths.big, 'small.txt'), 'utf8'), /small file/);
  assert.deepEqual(sorted(await readdir(f.paths.big)), ['big.bin', 'small.txt']);
});

test('tree, file, symlink, middle, top: the shapes the copy tests rely on', async () => {
  const f = await fixture();
  const { tree, file, symlink, middle, big, top } = f.paths;

  assert.match(await readFile(join(tree, 'self-ref'), 'utf8'), new RegExp(`^self: ${tree}\n$`));
  assert.ok((await lstat(join(tree, 'a/b/c/deep.txt'))).isFile());
  assert.ok((await lstat(join(tree, 'empty-dir'))).isDirectory());
  assert.deepEqual(await readdir(join(tree, 'empty-dir')), []);
  assert.equal((await lstat(join(tree, 'empty-file'))).size, 0);
  assert.ok(((await lstat(join(tree, 'bin/hello'))).mode & 0o111) !== 0, 'bin/hello is executable');
  assert.ok(((await lstat(join(tree, 'README'))).mode & 0o111) === 0, 'README is not executable');
  assert.equal(await readlink(join(tree, 'link-relative')), 'a/b/c/deep.txt');
  assert.equal(await readlink(join(tree, 'a/link-up')), '../README');
  assert.equal(await readlink(join(tree, 'link-absolute')), '/bin/sh');
  assert.equal(await readlink(join(tree, 'link-dangling')), 'does/not/exist');
  assert.equal(await readlink(join(tree, 'link-dir')), 'a/b');

  assert.ok((await lstat(file)).isFile(), 'file: root is a regular file');
  assert.ok((await lstat(symlink)).isSymbolicLink(), 'symlink: root is a symlink');
  assert.equal(await readlink(symlink), file);

  assert.equal(await readFile(join(middle, 'big-path'), 'utf8'), `${big}\n`);
  assert.equal(await readlink(join(middle, 'big-small')), `${big}/small.txt`);
  assert.equal(await readlink(join(top, 'tree')), tree);
  assert.equal(await readlink(join(top, 'middle')), middle);
});

test('a fresh salt builds a new closure quickly (100 MiB included)', async (t) => {
  const salt = `fresh-${process.pid}-${Date.now()}`;
  const base = await fixture();
  const t0 = performance.now();
  const f = await copyFixture(salt);
  const ms = performance.now() - t0;
  t.diagnostic(`fresh build of the whole fixture (salt ${salt}, 8 derivations, 100 MiB) took ${ms.toFixed(0)} ms`);
  try {
    for (const k of Object.keys(base.paths) as Array<keyof CopyFixture['paths']>) {
      assert.notEqual(f.paths[k], base.paths[k], `${k}: a new store path`);
    }
    assert.equal(f.closure.length, 6);
    const head = async (p: string) => {
      const fh = await open(join(p, 'big.bin'), 'r');
      try {
        const b = Buffer.alloc(64);
        await fh.read(b, 0, 64, 0);
        return b;
      } finally {
        await fh.close();
      }
    };
    assert.notDeepEqual(await head(f.paths.big), await head(base.paths.big), 'big.bin content depends on the salt');
  } finally {
    await deleteCopyFixture(salt);
  }
});
