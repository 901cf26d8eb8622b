// `nix-castore copy` end to end with real Nix: the closure of a real build
// (100 MiB file, tricky tree, self-reference, file and symlink roots) goes
// into a real daemon from Nix's own .attrs.json, from the legacy closure
// file and from plain store paths; each path is then checked against Nix.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyFixture, type CopyFixture } from '../helpers/copy-fixtures.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { openStore, sameAddr, type Store } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { assertStoreMatchesNix, publishedPaths } from './verify-store.js';
import { runCli } from './run-cli.js';
import { runNix, nixEnv } from '../helpers/nix.js';
import { execFileSync } from 'node:child_process';
import { parseAbsolute, parseBasename } from '../../src/nix/store-path.js';
import { fingerprint, verify, parsePublicKey } from '../../src/nix/signature.js';

let fx: CopyFixture;
let tmp: string;
before(async () => {
  fx = await copyFixture();
  tmp = await mkdtemp(join(tmpdir(), 'copy-e2e-'));
});
after(() => rm(tmp, { recursive: true, force: true }));

async function withDaemon(fn: (d: DaemonProcess, store: Store) => Promise<void>): Promise<void> {
  const d = await startDaemonProcess();
  const store = openStore(sameAddr(d.addr));
  try {
    await fn(d, store);
  } finally {
    await store.close();
    await d.stop();
  }
}

describe('copy into a daemon over a unix socket', () => {
  it('from Nix\'s own .attrs.json: every path matches Nix; a re-run sends nothing', async () => {
    await withDaemon(async (d, store) => {
      const r = await runCli(['copy', '--store', d.addr, '--attrs', fx.attrsJsonFile, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const report = JSON.parse(r.stdout);
      assert.equal(report.uploaded.length, fx.closure.length);
      assert.equal(report.failed.length, 0);
      // The 100 MiB file is read by the daemon itself (a daemon on this machine: BlobFromPathService).
      assert.ok(report.bytesSent + report.bytesReadByStore >= 100 * 1024 * 1024);
      assert.ok(report.blobsReadByStore >= 1, 'the large file was read by the daemon, not sent');
      assert.deepEqual(await publishedPaths(store), fx.closure);
      await assertStoreMatchesNix(store, fx.closure);

      const again = await runCli(['copy', '--store', d.addr, '--attrs', fx.attrsJsonFile, '--json']);
      assert.equal(again.code, 0, again.stderr);
      const r2 = JSON.parse(again.stdout);
      assert.equal(r2.blobsSent, 0, 'no blob sent again');
      assert.equal(r2.bytesSent, 0);
      assert.deepEqual(r2.uploaded, [], 'nothing published again');
      assert.equal(r2.skipped.length, fx.closure.length);
    });
  });

  it('from the legacy closure file (hashes computed while uploading)', async () => {
    await withDaemon(async (d, store) => {
      const r = await runCli(['copy', '--store', d.addr, '--closure-file', fx.legacyClosureFile]);
      assert.equal(r.code, 0, r.stderr);
      await assertStoreMatchesNix(store, fx.closure);
    });
  });

  it('from plain store-path arguments (metadata from nix path-info)', async () => {
    await withDaemon(async (d, store) => {
      const r = await runCli(['copy', '--store', d.addr, fx.top]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await publishedPaths(store), fx.closure);
      await assertStoreMatchesNix(store, fx.closure);
    });
  });

  it('a wrong narHash: that path and its referrers are not published, the rest are; exit 1', async () => {
    const attrs = JSON.parse(await readFile(fx.attrsJsonFile, 'utf8'));
    const big = attrs.closure.find((e: { path: string }) => e.path === fx.paths.big);
    big.narHash = 'sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0';
    const bad = join(tmp, 'bad-hash.attrs.json');
    await writeFile(bad, JSON.stringify(attrs));
    await withDaemon(async (d, store) => {
      const r = await runCli(['copy', '--store', d.addr, '--attrs', bad, '--json']);
      assert.equal(r.code, 1, r.stderr);
      const report = JSON.parse(r.stdout);
      const failed = report.failed.map((f: { path: string }) => f.path).sort();
      assert.deepEqual(failed, [fx.paths.big, fx.paths.middle, fx.paths.top].sort());
      assert.match(report.failed.find((f: { path: string }) => f.path === fx.paths.big).reason, /NAR hash mismatch/);
      assert.match(report.failed.find((f: { path: string }) => f.path === fx.paths.middle).reason, /reference .* failed/);
      const ok = fx.closure.filter((p) => !failed.includes(p));
      assert.deepEqual(await publishedPaths(store), ok);
      await assertStoreMatchesNix(store, ok);
      assert.match(r.stderr, /FAILED .*big/);
    });
  });
});

describe('copy without a daemon', () => {
  it('signs PathInfos with --sign-key-file; Nix\'s public key verifies them; derivers recorded', async () => {
    const sk = (await runNix('nix', ['key', 'generate-secret', '--key-name', 'castore-test-1'])).stdout.toString().trim();
    const pk = execFileSync('nix', ['key', 'convert-secret-to-public'], { input: sk, env: nixEnv() }).toString().trim();
    const skFile = join(tmp, 'secret.key');
    await writeFile(skFile, sk);
    const dir = join(tmp, 'signed-store');
    const r = await runCli(['copy', '--store', fileAddr(dir), '--sign-key-file', skFile, fx.top]);
    assert.equal(r.code, 0, r.stderr);
    const store = openStore(sameAddr(fileAddr(dir)));
    try {
      const key = parsePublicKey(pk);
      for (const path of fx.closure) {
        const sp = parseAbsolute(path);
        const info = (await store.pathInfos.get(sp.digest))!;
        const refs = info.narinfo!.referenceNames.map((n) => parseBasename(n));
        const fp = fingerprint(sp, info.narinfo!.narSha256, info.narinfo!.narSize, refs);
        const sig = info.narinfo!.signatures.find((s) => s.name === 'castore-test-1');
        assert.ok(sig, `${path} is signed`);
        assert.ok(verify(fp, sig, key), `${path}: signature verifies`);
        assert.ok(info.narinfo!.deriver, `${path}: deriver recorded`);
        assert.doesNotMatch(info.narinfo!.deriver!.name, /\.drv$/);
      }
    } finally {
      await store.close();
    }
  });


  it('a key given to a later copy signs what the store already had unsigned, once', async () => {
    const sk = (await runNix('nix', ['key', 'generate-secret', '--key-name', 'castore-later-1'])).stdout.toString().trim();
    const pk = parsePublicKey(execFileSync('nix', ['key', 'convert-secret-to-public'], { input: sk, env: nixEnv() }).toString().trim());
    const skFile = join(tmp, 'later.key');
    await writeFile(skFile, sk);
    const dir = join(tmp, 'signed-later');
    const first = await runCli(['copy', '--json', '--store', fileAddr(dir), fx.top]);
    assert.equal(first.code, 0, first.stderr);
    const second = await runCli(['copy', '--json', '--store', fileAddr(dir), '--sign-key-file', skFile, fx.top]);
    assert.equal(second.code, 0, second.stderr);
    const r = JSON.parse(second.stdout);
    assert.deepEqual(r.uploaded, []);
    assert.deepEqual([...r.signed].sort(), [...fx.closure].sort());
    const store = openStore(sameAddr(fileAddr(dir)));
    try {
      for (const path of fx.closure) {
        const sp = parseAbsolute(path);
        const info = (await store.pathInfos.get(sp.digest))!;
        const fp = fingerprint(sp, info.narinfo!.narSha256, info.narinfo!.narSize, info.narinfo!.referenceNames.map((n) => parseBasename(n)));
        const sig = info.narinfo!.signatures.find((s) => s.name === 'castore-later-1');
        assert.ok(sig && verify(fp, sig, pk), `${path}: signed now, and the signature verifies`);
      }
    } finally {
      await store.close();
    }
    const third = await runCli(['copy', '--json', '--store', fileAddr(dir), '--sign-key-file', skFile, fx.top]);
    assert.equal(third.code, 0, third.stderr);
    assert.deepEqual(JSON.parse(third.stdout).signed, [], 'signed once');
  });

  it('into a file:// store directly, then served by a daemon on that directory', async () => {
    const dir = join(tmp, 'direct-store');
    const manifestFile = join(tmp, 'manifest.json');
    const r = await runCli(['copy', '--store', fileAddr(dir), '--attrs', fx.attrsJsonFile, '--manifest', manifestFile]);
    assert.equal(r.code, 0, r.stderr);
    const manifest = JSON.parse(await readFile(manifestFile, 'utf8'));
    assert.deepEqual(manifest.paths.map((p: { path: string }) => p.path), fx.closure);
    const attrs = JSON.parse(await readFile(fx.attrsJsonFile, 'utf8'));
    for (const e of attrs.closure) {
      const m = manifest.paths.find((p: { path: string }) => p.path === e.path);
      assert.equal(m.narHash, e.narHash);
      assert.equal(m.narSize, e.narSize);
      assert.match(m.root.type, /^(directory|file|symlink)$/);
    }
    const d = await startDaemonProcess({ dataDir: dir });
    const store = openStore(sameAddr(d.addr));
    try {
      await assertStoreMatchesNix(store, fx.closure);
    } finally {
      await store.close();
      await d.stop();
    }
  });
});
