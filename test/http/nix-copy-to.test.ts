// Plain Nix 2.8 pushes to the daemon's binary cache and pulls back from it:
// `nix copy --to http://…` with xz (Nix's default), zstd and none, the write
// token sent from a netrc file as Nix users configure it; then the closure
// is substituted into a separate (chroot) store by `nix-store -r` with
// signatures required — only the daemon's key trusted — and verified. A
// second `nix copy --to` sends nothing. The castore root of every uploaded
// path equals the one `nix-castore copy` makes from the file system. The
// pusher pulls back through the narinfo Nix kept from its upload, also one
// naming a .nar.bz2.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheFixture, deleteCacheFixture, freshNixEnv, keyPair, netrcFile, type CacheFixture } from '../helpers/cache-fixtures.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { runNix } from '../helpers/nix.js';
import { runCli } from '../copy/run-cli.js';
import { cacheUrlOf, request } from './http-helpers.js';

const SALT = `copy-to-${process.pid}`;
const TOKEN = 'upload-token-for-the-test';

let fx: CacheFixture;
let tmp: string;
let publicKey: string;
let skFile: string;
let tokenFile: string;
let netrc: string;
const daemons: DaemonProcess[] = [];

before(async () => {
  fx = await cacheFixture(SALT);
  tmp = await mkdtemp(join(tmpdir(), 'nix-copy-to-'));
  const key = await keyPair('copy-to-test-1');
  publicKey = key.public;
  skFile = join(tmp, 'cache.key');
  await writeFile(skFile, key.secret, { mode: 0o600 });
  tokenFile = join(tmp, 'token');
  await writeFile(tokenFile, TOKEN, { mode: 0o600 });
  netrc = await netrcFile(join(tmp, 'netrc'), TOKEN);
});

after(async () => {
  for (const d of daemons) await d.stop();
  await deleteCacheFixture(fx);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function startCache(name: string, extra: string[] = []): Promise<{ d: DaemonProcess; url: string; data: string }> {
  const data = join(tmp, `data-${name}`);
  const d = await startDaemonProcess({
    args: ['--data', data, '--http', '127.0.0.1:0', '--sign-key-file', skFile, '--auth-token-file', tokenFile, ...extra],
  });
  daemons.push(d);
  return { d, url: await cacheUrlOf(d), data };
}

/** The pusher: the local Nix store, the token from netrc. */
function pushEnv(name: string): NodeJS.ProcessEnv {
  return freshNixEnv(join(tmp, `push-cache-${name}`), [`netrc-file = ${netrc}`]);
}

const puts = (d: DaemonProcess) => d.stderr().split('\n').filter((l) => /http: PUT /.test(l));

async function castoreRoots(store: string, paths: string[]): Promise<Map<string, unknown>> {
  const r = await runCli(['path-info', '--json', '--store', store, ...paths]);
  assert.equal(r.code, 0, r.stderr);
  const infos = JSON.parse(r.stdout) as { path: string; root: unknown }[];
  return new Map(infos.map((i) => [i.path, i.root]));
}

for (const [mode, query, narExt, compressionLine] of [
  ['xz (default)', '', '.nar.xz', 'xz'],
  ['zstd', '?compression=zstd', '.nar.zst', 'zstd'],
  ['none', '?compression=none', '.nar', 'none'],
] as const) {
  describe(`nix copy --to with ${mode}`, () => {
    let cache: { d: DaemonProcess; url: string; data: string };
    const name = compressionLine;

    before(async () => {
      cache = await startCache(name);
    });

    it('uploads the closure; each NAR is a PUT with its extension, then its narinfo', async () => {
      await runNix('nix', ['copy', '--to', cache.url + query, fx.top], { env: pushEnv(name) });
      const lines = puts(cache.d);
      const nars = lines.filter((l) => /PUT \/nar\//.test(l));
      const narinfos = lines.filter((l) => /PUT \/\w{32}\.narinfo 200/.test(l));
      assert.equal(nars.length, 4, lines.join('\n'));
      for (const l of nars) assert.ok(l.includes(`${narExt} 200`), l);
      assert.equal(narinfos.length, 4, lines.join('\n'));
      const r = await request(cache.url, `/${fx.top.slice(11, 43)}.narinfo`, 'GET', { authorization: `Bearer ${TOKEN}` });
      assert.equal(r.status, 200);
      // Served zstd whatever the upload was (the daemon's default).
      assert.match(r.body.toString(), /\nCompression: zstd\n/);
      assert.match(r.body.toString(), /\nSig: copy-to-test-1:/);
    });

    it('a second nix copy --to sends nothing', async () => {
      const before = puts(cache.d).length;
      await runNix('nix', ['copy', '--to', cache.url + query, fx.top], { env: pushEnv(name) });
      assert.deepEqual(puts(cache.d).slice(before), []);
    });

    it('nix-store -r substitutes the closure into another store, signed by the daemon; --verify-path passes', async () => {
      const root = join(tmp, `root-${name}`);
      const env = freshNixEnv(join(tmp, `pull-cache-${name}`), [
        `substituters = ${cache.url}`,
        `trusted-public-keys = ${publicKey}`,
        'require-sigs = true',
        `netrc-file = ${netrc}`,
      ]);
      await runNix('nix-store', ['--store', root, '-r', fx.top], { env });
      for (const p of fx.closure) {
        await runNix('nix-store', ['--store', root, '--verify-path', p], { env });
        const ours = await runNix('nix-store', ['--store', root, '-q', '--hash', p], { env });
        const theirs = await runNix('nix-store', ['-q', '--hash', p]);
        assert.equal(ours.stdout.toString(), theirs.stdout.toString(), p);
      }
    });

    it('the castore root of every path (over gRPC) equals what nix-castore copy makes of it', async () => {
      const copied = join(tmp, `copied-${name}`);
      const c = await runCli(['copy', '--quiet', '--store', `file://${copied}`, fx.top]);
      assert.equal(c.code, 0, c.stderr);
      // As a tvix/snix client sees it: the daemon's gRPC PathInfoService.
      const viaHttp = await castoreRoots(cache.d.addr, fx.closure);
      const viaCopy = await castoreRoots(`file://${copied}`, fx.closure);
      for (const p of fx.closure) {
        assert.ok(viaHttp.get(p), p);
        assert.deepEqual(viaHttp.get(p), viaCopy.get(p), p);
      }
    });

    it('fsck --nar finds the store clean', async () => {
      const r = await runCli(['fsck', '--data', cache.data, '--nar']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    });
  });
}

describe('the pusher pulls back from the same cache', () => {
  it("Nix asks for the file it uploaded (its own narinfo, kept in Nix's cache): served", async () => {
    const cache = await startCache('same-machine');
    const env = pushEnv('same-machine');
    await runNix('nix', ['copy', '--to', cache.url, fx.link], { env });
    const root = join(tmp, 'root-same-machine');
    await runNix('nix-store', ['--store', root, '-r', fx.link, '--option', 'substituters', cache.url, '--option', 'require-sigs', 'false'], { env });
    await runNix('nix-store', ['--store', root, '--verify-path', fx.link], { env });
    assert.ok(cache.d.stderr().split('\n').some((l) => /GET \/nar\/\w{52}\.nar\.xz 200/.test(l)), cache.d.stderr());
  });

  it('also after pushing with bzip2: its .nar.bz2 is served (zstd inside; Nix 2.8 decodes by content)', async () => {
    const cache = await startCache('same-machine-bz2');
    const env = pushEnv('same-machine-bz2');
    await runNix('nix', ['copy', '--to', `${cache.url}?compression=bzip2`, fx.link], { env });
    const root = join(tmp, 'root-same-machine-bz2');
    await runNix('nix-store', ['--store', root, '-r', fx.link, '--option', 'substituters', cache.url, '--option', 'require-sigs', 'false'], { env });
    await runNix('nix-store', ['--store', root, '--verify-path', fx.link], { env });
    assert.ok(cache.d.stderr().split('\n').some((l) => /GET \/nar\/\w{52}\.nar\.bz2 200/.test(l)), cache.d.stderr());
  });
});

describe('what nix copy --to also sends: debug info (dropped) and realisations (kept: realisations.test)', () => {
  // A path with a debug file (?index-debug-info=true PUTs debuginfo/<build id>.debug for
  // lib/debug/.build-id/<2 hex>/<38 hex>.debug),
  // and a content-addressed derivation's output (ca-derivations: realisations/<id>.doi).
  const extras = (salt: string) => `{
  dbg = builtins.derivation { name = "dbg-${salt}"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir -p $out/lib/debug/.build-id/ab && echo ${salt} > $out/lib/debug/.build-id/ab/cdef01234567890123456789abcdef01234567.debug" ]; };
  ca = builtins.derivation { name = "ca-${salt}"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "echo ${salt} > $out" ]; __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
}`;

  it('?index-debug-info=true and a ca-derivations output: accepted (2xx), the paths published', async () => {
    const cache = await startCache('extras');
    const file = join(tmp, 'extras.nix');
    await writeFile(file, extras(`${SALT}-extras`));
    const env = freshNixEnv(join(tmp, 'push-cache-extras'), [`netrc-file = ${netrc}`, 'experimental-features = nix-command flakes ca-derivations']);
    await runNix('nix', ['copy', '--to', `${cache.url}?index-debug-info=true`, '-f', file, 'dbg'], { env });
    await runNix('nix', ['copy', '--to', cache.url, '-f', file, 'ca'], { env });
    const lines = puts(cache.d);
    assert.ok(lines.some((l) => /PUT \/debuginfo\/abcdef01234567890123456789abcdef01234567\.debug 200/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /PUT \/realisations\/sha256:\w+!out\.doi 200/.test(l)), lines.join('\n'));
    for (const attr of ['dbg', 'ca']) {
      const out = (await runNix('nix-build', [file, '-A', attr, '--no-out-link'], { env })).stdout.toString().trim();
      const r = await request(cache.url, `/${out.slice(11, 43)}.narinfo`, 'GET', { authorization: `Bearer ${TOKEN}` });
      assert.equal(r.status, 200, `${attr}: ${out}`);
    }
  });
});
