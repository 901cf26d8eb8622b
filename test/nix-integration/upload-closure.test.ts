// nix/upload-closure.nix built with real Nix (2.8, no nixpkgs): stand-ins
// for runCommand and the packaged CLI (test/fixtures/nix-integration/
// stand-ins.nix) and the small fixture closure of test/fixtures/closure.nix.
// Each mode's result is then served by `nix-castore daemon --data RESULT`
// (a read-only directory in /nix/store) and checked path by path against
// Nix; manifest.json must list the closure with Nix's NAR hashes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fixtureClosureNixFile, nixBuild, nixEnv, requireNix, runNix } from '../helpers/nix.js';
import { startDaemonProcess } from '../helpers/daemon.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { parseAbsolute, parseBasename } from '../../src/nix/store-path.js';
import { fingerprint, parsePublicKey, verify } from '../../src/nix/signature.js';
import { assertStoreMatchesNix, publishedPaths } from '../copy/verify-store.js';

const FIXTURES = dirname(fixtureClosureNixFile());
const REPO = dirname(dirname(FIXTURES));
const UPLOAD_NIX = join(FIXTURES, 'nix-integration', 'upload.nix');
// A fresh salt per run: the helper's derivations are new, so `copy` really
// runs (with this checkout's dist/) instead of Nix reusing an old result.
const SALT = `${process.pid}-${Date.now()}`;
// Builders as root (nix.md §2): they read the checkout and the test's
// temporary files whatever their permissions.
const CONFIG = ['build-users-group ='];

let tmp: string;
const built: string[] = [];

before(async () => {
  await requireNix(); // a clear message when Nix is missing, never a skip
  tmp = await mkdtemp(join(tmpdir(), 'nix-upload-closure-'));
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
  // Each result holds ~2 MiB of blobs; nothing else refers to them.
  if (built.length > 0) await runNix('nix-store', ['--delete', ...built]).catch(() => undefined);
});

async function build(attr: string, opts: { argstr?: Record<string, string>; outLink?: string } = {}): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      const outs = await nixBuild(UPLOAD_NIX, {
        attr,
        argstr: { repo: REPO, salt: SALT, ...opts.argstr },
        config: CONFIG,
        kind: 'file',
        outLink: opts.outLink,
      });
      assert.equal(outs.length, 1, `one output for ${attr}: ${outs.join(' ')}`);
      built.push(outs[0]);
      return outs[0];
    } catch (e) {
      // Nix 2.8 may report a just-exiting builder as killed (NixOS/nix#2176)
      // when other builds run at the same time; the stand-ins work around
      // it, this is the second line of defence.
      if (attempt >= 3 || !/failed due to signal/.test((e as Error).message)) throw e;
    }
  }
}

async function fixturePath(attr: string): Promise<string> {
  const [p] = await nixBuild(fixtureClosureNixFile(), { attr, kind: 'file' });
  return p;
}

async function closureOf(roots: string[]): Promise<string[]> {
  const { stdout } = await runNix('nix-store', ['--query', '--requisites', ...roots]);
  return [...new Set(stdout.toString().split('\n').filter(Boolean))].sort();
}

async function derivationEnv(out: string): Promise<Record<string, string>> {
  const drv = (await runNix('nix-store', ['--query', '--deriver', out])).stdout.toString().trim();
  const shown = JSON.parse((await runNix('nix', ['show-derivation', drv])).stdout.toString());
  return (shown[drv] as { env: Record<string, string> }).env;
}

interface Manifest {
  version: number;
  paths: Array<{ path: string; narHash: string; narSize: number; references: string[]; root: { type: string } }>;
}

async function assertManifest(file: string, closure: string[]): Promise<void> {
  const manifest = JSON.parse(await readFile(file, 'utf8')) as Manifest;
  assert.equal(manifest.version, 1);
  assert.deepEqual(manifest.paths.map((p) => p.path), closure, 'manifest.json lists the closure');
  for (const entry of manifest.paths) {
    const hash = (await runNix('nix-store', ['--query', '--hash', entry.path])).stdout.toString().trim();
    assert.equal(entry.narHash, hash, `${entry.path}: manifest NAR hash = Nix's`);
    const refs = (await runNix('nix-store', ['--query', '--references', entry.path])).stdout.toString().split('\n').filter(Boolean).sort();
    assert.deepEqual([...entry.references].sort(), refs, `${entry.path}: manifest references = Nix's`);
  }
}

/**
 * A hermetic result: an on-disk store with the closure and manifest.json,
 * served read-only by `nix-castore daemon --data DIR`, unchanged afterwards.
 */
async function assertHermeticResult(out: string, closure: string[], dataDir = out): Promise<void> {
  // access/ (read times, for gc) appears when a daemon served the store during the build (viaDaemon).
  assert.deepEqual((await readdir(out)).filter((n) => n !== 'access').sort(), ['blobs', 'directories', 'directory-packs', 'gc', 'manifest.json', 'packs', 'pathinfo', 'tmp']);
  await assertManifest(join(out, 'manifest.json'), closure);
  const d = await startDaemonProcess({ dataDir });
  const store = openStore(sameAddr(d.addr));
  try {
    assert.deepEqual(await publishedPaths(store), closure, 'the daemon serves exactly the closure');
    await assertStoreMatchesNix(store, closure);
  } finally {
    await store.close();
    assert.equal(await d.stop(), 0, `daemon exit status; stderr:\n${d.stderr()}`);
  }
  // The daemon only read its data directory: the store path still has the
  // NAR hash Nix registered for it.
  await runNix('nix-store', ['--verify-path', out]);
}

describe('nix/upload-closure.nix (real Nix, stand-in runCommand and CLI)', () => {
  let tree: string;
  let symlink: string;
  let treeClosure: string[];
  let twoRootClosure: string[];

  before(async () => {
    tree = await fixturePath('tree');
    symlink = await fixturePath('symlink');
    treeClosure = await closureOf([tree]);
    twoRootClosure = await closureOf([symlink, tree]);
    assert.equal(treeClosure.length, 5);
  });

  it('structured attrs: copy finds .attrs.json itself; `nix-castore daemon --data ./result` serves the closure', async () => {
    const link = join(tmp, 'result');
    const out = await build('structured', { outLink: link });
    try {
      const env = await derivationEnv(out);
      const attrs = JSON.parse(env.__json) as Record<string, unknown>;
      assert.deepEqual(attrs.exportReferencesGraph, { closure: [symlink, tree] });
      assert.equal(attrs.__noChroot, undefined, 'hermetic builds keep the sandbox');
      // As the README says: the daemon pointed at the out-link.
      await assertHermeticResult(out, twoRootClosure, link);
    } finally {
      await rm(link, { force: true });
    }
  });

  it('the build log has plain lines (a Nix build\'s stderr is a pty, not a terminal to redraw)', async () => {
    const out = await build('structured');
    const log = (await runNix('nix', ['log', out])).stdout.toString();
    assert.match(log, /copy: 5 paths in the closure/);
    assert.match(log, /copy: 5 uploaded/);
    assert.doesNotMatch(log, /[\r\x1b]/, 'no carriage returns or escape codes');
  });

  it('legacy exportReferencesGraph: one file per root, merged (shared paths once), hashes computed while uploading', async () => {
    const out = await build('legacy');
    const env = await derivationEnv(out);
    assert.equal(env.exportReferencesGraph, `closure-0 ${symlink} closure-1 ${tree}`);
    assert.equal(env.__structuredAttrs, undefined);
    await assertHermeticResult(out, twoRootClosure);
    // The text files have no NAR sizes: the log must not claim "(0 B)" to upload.
    const log = (await runNix('nix', ['log', out])).stdout.toString();
    assert.match(log, /copy: 5 paths in the closure, 0 already in the store, 5 to upload\n/);
  });

  it('legacy exportReferencesGraph with a single root', async () => {
    const out = await build('legacySingle');
    assert.equal((await derivationEnv(out)).exportReferencesGraph, `closure ${tree}`);
    await assertHermeticResult(out, treeClosure);
  });

  it('viaDaemon: a daemon on a unix socket inside the build, health-checked, copy over gRPC, stopped cleanly', async () => {
    const out = await build('viaDaemon');
    await assertHermeticResult(out, treeClosure);
  });

  it('storeAddr: pushes to a store outside the build (signed); $out holds only the manifest; __noChroot set', async () => {
    const sk = (await runNix('nix', ['key', 'generate-secret', '--key-name', 'upload-closure-test-1'])).stdout.toString().trim();
    const pk = execFileSync('nix', ['key', 'convert-secret-to-public'], { input: sk, env: nixEnv() }).toString().trim();
    const skFile = join(tmp, 'secret.key');
    await writeFile(skFile, sk, { mode: 0o600 });

    const d = await startDaemonProcess();
    const store = openStore(sameAddr(d.addr));
    try {
      const out = await build('remote', { argstr: { storeAddr: d.addr, signKeyFile: skFile } });
      assert.deepEqual(await readdir(out), ['manifest.json']);
      await assertManifest(join(out, 'manifest.json'), treeClosure);
      const env = await derivationEnv(out);
      const attrs = JSON.parse(env.__json) as Record<string, unknown>; // structured attrs
      assert.equal(attrs.__noChroot, true, 'network access from the build');
      assert.equal(attrs.allowSubstitutes, false, 'never substituted (that would skip the push)');
      assert.equal(attrs.preferLocalBuild, true);
      assert.ok(!JSON.stringify(env).includes(sk.split(':')[1]), 'the secret key is not in the derivation');

      assert.deepEqual(await publishedPaths(store), treeClosure);
      await assertStoreMatchesNix(store, treeClosure);
      const key = parsePublicKey(pk);
      for (const path of treeClosure) {
        const sp = parseAbsolute(path);
        const info = (await store.pathInfos.get(sp.digest))!;
        const refs = info.narinfo!.referenceNames.map((n) => parseBasename(n));
        const sig = info.narinfo!.signatures.find((s) => s.name === 'upload-closure-test-1');
        assert.ok(sig, `${path} is signed`);
        assert.ok(verify(fingerprint(sp, info.narinfo!.narSha256, info.narinfo!.narSize, refs), sig, key), `${path}: signature verifies`);
      }
    } finally {
      await store.close();
      await d.stop();
    }
  });

  it('storeAddr + authTokenFile: pushes to a daemon that wants its write token; the token is not in the derivation', async () => {
    const token = `upload-closure-token-${SALT}`;
    const tokenFile = join(tmp, 'castore.token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    const d = await startDaemonProcess({ extraArgs: ['--auth-token-file', tokenFile] });
    const store = openStore(sameAddr(d.addr));
    try {
      const out = await build('remoteWithToken', { argstr: { storeAddr: d.addr, authTokenFile: tokenFile } });
      await assertManifest(join(out, 'manifest.json'), treeClosure);
      assert.ok(!JSON.stringify(await derivationEnv(out)).includes(token), 'the token is not in the derivation');
      assert.deepEqual(await publishedPaths(store), treeClosure);
      await assertStoreMatchesNix(store, treeClosure);
    } finally {
      await store.close();
      await d.stop();
    }
  });

  it('rejects an empty `paths` and viaDaemon with storeAddr, at evaluation', async () => {
    const helper = join(REPO, 'nix', 'upload-closure.nix');
    const call = (args: string) =>
      runNix('nix-instantiate', ['--eval', '--expr', `(import ${helper} { runCommand = _: _: _: {}; nix-castore = "/x"; }) ${args}`]);
    await assert.rejects(call('{ paths = [ ]; }'), /`paths` is empty/);
    await assert.rejects(call('{ paths = [ /x ]; storeAddr = "grpc+http://[::1]:8000"; viaDaemon = true; }'), /viaDaemon applies to the hermetic mode only/);
    await assert.rejects(call('{ paths = [ /x ]; authTokenFile = "/run/token"; }'), /authTokenFile goes with storeAddr/);
  });
});
