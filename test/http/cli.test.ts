// `nix-castore nar` and `nix-castore path-info` against a file:// store
// filled by `nix-castore copy` from a real Nix closure, and the usage errors
// of those commands and of the daemon's binary-cache flags.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtureClosure, nixEnv, nixPathInfo, nixStoreDump, runNix, type FixtureClosure } from '../helpers/nix.js';
import { CLI } from '../helpers/daemon.js';
import { fileAddr } from '../../src/addr/parse.js';
import { runCli } from '../copy/run-cli.js';

let fx: FixtureClosure;
let tmp: string;
let storeAddr: string;

before(async () => {
  fx = await fixtureClosure();
  tmp = await mkdtemp(join(tmpdir(), 'http-cli-'));
  storeAddr = fileAddr(join(tmp, 'store'));
  const r = await runCli(['copy', '--quiet', '--store', storeAddr, fx.root]);
  assert.equal(r.code, 0, r.stderr);
});
after(() => rm(tmp, { recursive: true, force: true }));

/** `nix-castore nar … | nix-store --restore DIR` in bash with pipefail. */
function narRestore(args: string[], dir: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['-c', 'set -o pipefail; "$0" "$1" nar "${@:3}" | nix-store --restore "$2"', process.execPath, CLI, dir, ...args],
      { env: nixEnv() },
      (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
    );
  });
}

describe('nix-castore nar', () => {
  it('nar P | nix-store --restore DIR reproduces every path of the closure (same NAR as nix-store --dump)', async () => {
    for (const { key, path } of fx.paths) {
      const dir = join(tmp, `restored-${key}`);
      const r = await narRestore(['--store', storeAddr, path], dir);
      assert.equal(r.code, 0, `${key}: ${r.stderr}`);
      assert.ok((await nixStoreDump(dir)).equals(await nixStoreDump(path)), `${key}: restored tree dumps to the same NAR`);
    }
  });

  it('accepts a basename and a symlink to the store path (a result link)', async () => {
    const link = join(tmp, 'result');
    await symlink(fx.byKey.file, link);
    for (const arg of [fx.byKey.file.slice('/nix/store/'.length), link]) {
      const dir = join(tmp, `restored-arg-${arg.length}`);
      const r = await narRestore(['--store', storeAddr, arg], dir);
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await nixStoreDump(dir)).equals(await nixStoreDump(fx.byKey.file)));
    }
  });

  it('exit 1 "not in the store" for a valid path the store lacks', async () => {
    const r = await runCli(['nar', '--store', storeAddr, '/nix/store/00000000000000000000000000000000-absent']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\/nix\/store\/00000000000000000000000000000000-absent is not in the store/);
    assert.equal(r.stdout, '');
    // same hash, other name: not the same store path
    const other = fx.byKey.file.replace(/-[^/]*$/, '-other-name');
    const r2 = await runCli(['nar', '--store', storeAddr, other]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /is not in the store/);
  });

  it('exit 2 for bad input', async () => {
    for (const args of [
      [],
      [fx.byKey.file, fx.byKey.exe],
      ['/nix/store/short'],
      [`${fx.byKey.tree}/sub/path`],
      ['/tmp/not-a-store-path'],
      ['--bogus', fx.byKey.file],
      ['--store', 'ftp://x', fx.byKey.file],
    ]) {
      const r = await runCli(['nar', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^nix-castore: /);
      assert.equal(r.stdout, '');
    }
  });

  it('--help', async () => {
    const r = await runCli(['nar', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: nix-castore nar/);
    assert.match(r.stdout, /nix-store --restore/);
  });
});

describe('nix-castore path-info', () => {
  it('--json agrees with nix path-info (hash, size, references, deriver) and names the castore root', async () => {
    const paths = fx.paths.map((p) => p.path);
    const r = await runCli(['path-info', '--store', storeAddr, '--json', ...paths]);
    assert.equal(r.code, 0, r.stderr);
    const ours = JSON.parse(r.stdout) as Record<string, unknown>[];
    const nix = await nixPathInfo(paths);
    assert.equal(ours.length, paths.length);
    for (const [i, path] of paths.entries()) {
      const n = nix.find((x) => x.path === path)!;
      const o = ours[i];
      assert.equal(o.path, path);
      assert.equal(o.narHash, n.narHash);
      assert.equal(o.narSize, n.narSize);
      assert.deepEqual(o.references, [...(n.references ?? [])].sort());
      assert.equal(o.deriver, n.deriver);
      assert.equal(o.ca, null);
      const root = o.root as { type: string; digest?: string };
      const key = fx.paths[i].key;
      assert.equal(root.type, key === 'symlink' ? 'symlink' : key === 'file' || key === 'exe' ? 'file' : 'directory', key);
      if (root.type !== 'symlink') assert.match(root.digest!, /^b3:[A-Za-z0-9+/]{43}=$/);
    }
  });

  it('text output: one block per path', async () => {
    const r = await runCli(['path-info', '--store', storeAddr, fx.byKey.exe, fx.byKey.tree]);
    assert.equal(r.code, 0, r.stderr);
    const blocks = r.stdout.trim().split('\n\n');
    assert.equal(blocks.length, 2);
    assert.match(blocks[0], new RegExp(`^StorePath: ${fx.byKey.exe}\nNarHash: sha256:[0-9a-z]{52}\nNarSize: \\d+\nReferences: \nDeriver: /nix/store/\\S+\\.drv\nRoot: executable file b3:\\S+ \\(\\d+ bytes\\)$`));
    assert.match(blocks[1], /\nReferences: (\/nix\/store\/\S+ ){4}\/nix\/store\/\S+\n/);
    assert.match(blocks[1], /\nRoot: directory b3:\S+ \(size \d+\)$/);
  });

  it('missing paths: listed as invalid, reported, exit 1', async () => {
    const absent = '/nix/store/00000000000000000000000000000000-absent';
    const r = await runCli(['path-info', '--store', storeAddr, '--json', fx.byKey.file, absent]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /absent is not in the store/);
    const out = JSON.parse(r.stdout);
    assert.equal(out[0].path, fx.byKey.file);
    assert.deepEqual(out[1], { path: absent, valid: false });
  });

  it('exit 2 for bad input, --help', async () => {
    for (const args of [[], ['not-a-path'], [fx.byKey.file, '/nix/store/x'], ['--jsn', fx.byKey.file]]) {
      const r = await runCli(['path-info', '--store', storeAddr, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
    const h = await runCli(['path-info', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /Usage: nix-castore path-info/);
  });
});

describe('nix-castore daemon binary-cache flags', () => {
  it('refuses bad --http, --priority and key files, and cache flags without --http (exit 2)', async () => {
    const bad = join(tmp, 'bad.key');
    await writeFile(bad, 'not a key');
    const sk = (await runNix('nix', ['key', 'generate-secret', '--key-name', 'flags-test-1'])).stdout.toString();
    const good = join(tmp, 'good.key');
    await writeFile(good, sk);
    for (const args of [
      ['--sign-key-file', good],
      ['--priority', '10'],
      ['--http', 'nonsense'],
      ['--http', '127.0.0.1:70000'],
      ['--http', '127.0.0.1:0', '--priority', '-1'],
      ['--http', '127.0.0.1:0', '--priority', 'high'],
      ['--http', '127.0.0.1:0', '--sign-key-file', bad],
      ['--http', '127.0.0.1:0', '--sign-key-file', join(tmp, 'missing.key')],
    ]) {
      const r = await runCli(['daemon', '--store', 'memory://', '--listen', `unix:${join(tmp, 'never.sock')}`, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^nix-castore: /);
      assert.doesNotMatch(r.stderr, new RegExp(sk.split(':')[1].trim().slice(0, 20).replace(/[+/]/g, '\\$&')));
    }
  });

  it('--help describes the binary cache', async () => {
    const r = await runCli(['daemon', '--help']);
    assert.equal(r.code, 0);
    for (const flag of ['--http ADDR', '--sign-key-file FILE', '--priority N']) assert.ok(r.stdout.includes(flag), flag);
  });
});
