// Real Nix substitutes from the daemon's binary cache: a fresh closure
// (100 MiB file, tricky tree, self-reference, file and symlink roots) is
// built, copied into the daemon, deleted from /nix/store and restored by
// `nix-store -r` with signatures required — only with the daemon's key —
// and fetched by `nix copy --from`. `nix-castore nar` reproduces the big
// path with flat memory.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyFixture, deleteCopyFixture, type CopyFixture } from '../helpers/copy-fixtures.js';
import { startDaemonProcess, CLI, CLI_NODE_FLAGS, type DaemonProcess } from '../helpers/daemon.js';
import { nixEnv, nixPathInfo, runNix, parsePathInfoJson } from '../helpers/nix.js';
import { runCli } from '../copy/run-cli.js';
import { cacheUrlOf, request } from './http-helpers.js';
import { keyPair } from '../helpers/cache-fixtures.js';

const SALT = 'http-cache';
const KEY_NAME = 'http-cache-test-1';

let fx: CopyFixture;
let tmp: string;
let daemon: DaemonProcess;
let url: string;
let publicKey: string;
/** Same key name, other key material: must not be accepted. */
let wrongPublicKey: string;
const narHashes = new Map<string, string>();

/** Options that make the daemon the only substituter, with signatures required. */
function substituteFrom(trustedKey: string): string[] {
  return [
    '--option', 'substituters', url,
    '--option', 'trusted-public-keys', trustedKey,
    '--option', 'require-sigs', 'true',
    '--option', 'narinfo-cache-negative-ttl', '0',
  ];
}

function allPaths(): string[] {
  return [fx.attrsJsonFile, fx.legacyClosureFile, ...fx.closure];
}

/** Deletes the fixture's paths that are valid (the capture files refer to the closure, so they go too). */
async function deleteFromNixStore(): Promise<void> {
  const present = allPaths().filter((p) => existsSync(p));
  if (present.length === 0) return;
  try {
    await runNix('nix-store', ['--delete', ...present]);
  } catch {
    await runNix('nix-store', ['--delete', '--ignore-liveness', ...present]);
  }
}

async function exitCode(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const r = await runNix(cmd, args);
    return { code: 0, stderr: r.stderr };
  } catch (err) {
    return { code: 1, stderr: (err as Error).message };
  }
}

before(async () => {
  fx = await copyFixture(SALT);
  tmp = await mkdtemp(join(tmpdir(), 'http-substitute-'));
  for (const info of await nixPathInfo(fx.closure)) narHashes.set(info.path, info.narHash!);

  const key = await keyPair(KEY_NAME);
  publicKey = key.public;
  wrongPublicKey = (await keyPair(KEY_NAME)).public;
  const skFile = join(tmp, 'cache.key');
  await writeFile(skFile, key.secret, { mode: 0o600 });

  daemon = await startDaemonProcess({
    args: ['--data', join(tmp, 'data'), '--http', '127.0.0.1:0', '--sign-key-file', skFile, '--priority', '10'],
  });
  url = await cacheUrlOf(daemon);
  const copy = await runCli(['copy', '--quiet', '--store', daemon.addr, fx.top]);
  assert.equal(copy.code, 0, copy.stderr);
});

after(async () => {
  await daemon?.stop();
  if (fx) await deleteFromNixStore().catch(() => undefined);
  await deleteCopyFixture(SALT);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** Peak RSS of a running process so far, in MiB (0 once it is gone). */
function vmHwmMiB(pid: number | undefined): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Runs the CLI with `args`, its stdout piped into `consumer` (or
 * discarded), sampling the CLI process's peak RSS. With the node flags of
 * its shebang, as `nix-castore` runs: without them V8's young generation
 * alone is 36 MiB larger, and the peak moved with its collections.
 */
function runSampled(args: string[], consumer?: string[]): Promise<{ peakRssMiB: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const cli = spawn(process.execPath, [...CLI_NODE_FLAGS, CLI, ...args], { env: nixEnv(), stdio: ['ignore', consumer ? 'pipe' : 'ignore', 'pipe'] });
    const sink = consumer && spawn(consumer[0], consumer.slice(1), { env: nixEnv(), stdio: ['pipe', 'ignore', 'pipe'] });
    if (sink) cli.stdout!.pipe(sink.stdin!);
    let stderr = '';
    cli.stderr!.on('data', (d) => (stderr += d));
    sink?.stderr!.on('data', (d) => (stderr += d));
    let peak = 0;
    const sample = setInterval(() => (peak = Math.max(peak, vmHwmMiB(cli.pid))), 5);
    let pending = sink ? 2 : 1;
    let failed = '';
    const done = (what: string) => (code: number | null) => {
      if (code !== 0) failed += `${what} exited ${code}. `;
      if (--pending > 0) return;
      clearInterval(sample);
      if (failed) reject(new Error(failed + stderr));
      else resolve({ peakRssMiB: peak, stderr });
    };
    cli.on('close', done(`nix-castore ${args[0]}`));
    sink?.on('close', done(consumer![0]));
  });
}

async function dumpSha256(path: string): Promise<string> {
  const r = await runNix('bash', ['-c', 'set -o pipefail; nix-store --dump "$1" | sha256sum', 'bash', path]);
  return r.stdout.toString().split(' ')[0];
}

describe('serving the store back to Nix', () => {
  it('the daemon prints its cache URL and public key; nix-cache-info has the priority', async () => {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(daemon.stderr().includes(`signing as ${publicKey}`), daemon.stderr());
    const info = await request(url, '/nix-cache-info');
    assert.equal(info.body.toString(), 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 10\n');
  });

  it('nix-castore nar | nix-store --restore reproduces the 100 MiB path, in flat memory', async (t) => {
    const dir = join(tmp, 'restored-big');
    const nar = await runSampled(['nar', '--store', daemon.addr, fx.paths.big], ['nix-store', '--restore', dir]);
    assert.equal(await dumpSha256(dir), await dumpSha256(fx.paths.big));
    // The same process without the NAR (same modules, same store client)
    // is the baseline. What rendering adds is mostly received buffers V8
    // has not freed yet (it frees them in ~64 MiB steps): 62-110 MiB over
    // 9 runs here, before and after 2026-12-05's changes, so 100 failed now
    // and then. A NAR held whole would add its 100 MiB on top of that.
    const base = await runSampled(['path-info', '--store', daemon.addr, fx.paths.big]);
    const extra = nar.peakRssMiB - base.peakRssMiB;
    t.diagnostic(`peak RSS: nar ${nar.peakRssMiB.toFixed(0)} MiB, path-info ${base.peakRssMiB.toFixed(0)} MiB`);
    assert.ok(base.peakRssMiB > 0 && extra < 140, `nix-castore nar used ${extra.toFixed(0)} MiB more than path-info`);
  });

  it('after deletion from /nix/store, a different trusted key gets nothing restored', async () => {
    await deleteFromNixStore();
    for (const p of allPaths()) assert.ok(!existsSync(p), `${p} deleted`);
    const r = await exitCode('nix-store', ['-r', fx.top, ...substituteFrom(wrongPublicKey)]);
    assert.notEqual(r.code, 0, 'nix-store -r must fail');
    assert.match(r.stderr, /is not signed by any of the keys in 'trusted-public-keys'/);
    for (const p of fx.closure) assert.ok(!existsSync(p), `${p} must not be restored`);
    const again = await exitCode('nix-store', ['--check-validity', fx.top]);
    assert.notEqual(again.code, 0);
  });

  it("with the daemon's key, nix-store -r restores every path; contents verify", async () => {
    const r = await exitCode('nix-store', ['-r', fx.top, ...substituteFrom(publicKey)]);
    assert.equal(r.code, 0, r.stderr);
    for (const p of fx.closure) assert.ok(existsSync(p), `${p} restored`);
    for (const p of fx.closure) await runNix('nix-store', ['--verify-path', p]);
    const infos = await nixPathInfo(fx.closure);
    for (const info of infos) {
      assert.equal(info.narHash, narHashes.get(info.path), info.path);
      assert.ok(info.signatures?.some((s) => s.startsWith(`${KEY_NAME}:`)), `${info.path} carries the cache's signature`);
    }
    await verifyWholeStore([]);
    // zstd by default, compressed on the fly.
    assert.match(daemon.stderr(), new RegExp(`GET /nar/${fx.paths.big.slice(11, 43)}-[0-9a-z]{52}\\.nar\\.zst 200 \\d+ `));
  });

  it('nix copy --from the cache into a second local store', async () => {
    const other = join(tmp, 'other-store');
    await runNix('nix', ['copy', '--from', url, '--to', other, fx.top, '--option', 'trusted-public-keys', publicKey]);
    const { stdout } = await runNix('nix', ['path-info', '--store', other, '--json', '--recursive', fx.top]);
    const copied = parsePathInfoJson(stdout.toString());
    assert.deepEqual(copied.map((i) => i.path).sort(), [...fx.closure].sort());
    for (const i of copied) assert.equal(i.narHash, narHashes.get(i.path), i.path);
    await verifyWholeStore(['--store', other]);
  });
});

/**
 * `nix-store --verify --check-contents`. Other tests may delete their own
 * paths meanwhile, which 2.8 counts as an error ("path … disappeared"):
 * retry when the only complaints are warnings about vanished paths.
 */
async function verifyWholeStore(storeArgs: string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const r = await exitCode('nix-store', [...storeArgs, '--verify', '--check-contents']);
    if (r.code === 0) return;
    const onlyVanished = !/\berror:/.test(r.stderr.replace(/^.*failed \(.*\):\n/, ''));
    if (!onlyVanished || attempt >= 3) assert.fail(`nix-store --verify --check-contents failed:\n${r.stderr}`);
  }
}
