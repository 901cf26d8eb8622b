// The first errors a user meets with a daemon say what to change: none
// running at the address (which store, and how to start or name one), and
// a daemon that wants its write token (the variable that sends it).
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { nixEnv, requireNix, runNix } from '../helpers/nix.js';
import { runCli } from '../copy/run-cli.js';
import { createServer, type AddressInfo } from 'node:net';

let tmp: string;
let storePath: string;
let daemon: DaemonProcess;
let tokenFile: string;

before(async () => {
  await requireNix();
  tmp = await mkdtemp(join(tmpdir(), 'error-hints-'));
  await writeFile(join(tmp, 'hello.txt'), 'error hints\n');
  storePath = (await runNix('nix-store', ['--add', join(tmp, 'hello.txt')])).stdout.toString().trim();
  tokenFile = join(tmp, 'token');
  await writeFile(join(tmp, 'token'), 'sesame\n', { mode: 0o600 });
  daemon = await startDaemonProcess({ args: ['--data', join(tmp, 'data'), '--auth-token-file', tokenFile] });
});
after(async () => {
  await daemon?.stop();
  await rm(tmp, { recursive: true, force: true });
});

const copy = (store: string, env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [CLI, 'copy', '-q', '--store', store, storePath], { encoding: 'utf8', env: { ...nixEnv(), NIX_CASTORE_AUTH_TOKEN_FILE: '', ...env } });

it('no daemon at the address: the store is named, and how to start one or name another', () => {
  const r = copy(`grpc+unix://${join(tmp, 'nobody.sock')}`);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /the store at grpc\+unix:\/\/\S+nobody\.sock: UNAVAILABLE/);
  assert.match(r.stderr, /is a daemon running there\? Start one with 'nix-castore daemon', or say which store with --store/);
});

it('a daemon that wants its token: the variable that sends it; with it the copy goes through', () => {
  const r = copy(daemon.addr);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /UNAUTHENTICATED/);
  assert.match(r.stderr, /set NIX_CASTORE_AUTH_TOKEN_FILE to a file holding it/);
  const ok = copy(daemon.addr, { NIX_CASTORE_AUTH_TOKEN_FILE: tokenFile });
  assert.equal(ok.status, 0, ok.stderr);
});

it('the hook says the same, and copy, hook and drain --help tell of the token', () => {
  const r = spawnSync(process.execPath, [CLI, 'hook', '--mode', 'direct', '--store', daemon.addr], {
    encoding: 'utf8',
    env: { ...nixEnv(), NIX_CASTORE_AUTH_TOKEN_FILE: '', OUT_PATHS: storePath, DRV_PATH: '' },
  });
  assert.equal(r.status, 0, 'a failed push does not fail the build');
  assert.match(r.stderr, /not pushed: .*UNAUTHENTICATED[^]*NIX_CASTORE_AUTH_TOKEN_FILE/);
  for (const cmd of ['copy', 'hook', 'drain']) {
    const h = spawnSync(process.execPath, [CLI, cmd, '--help'], { encoding: 'utf8' });
    assert.match(h.stdout, /NIX_CASTORE_AUTH_TOKEN_FILE/, `${cmd} --help`);
  }
});

it('a daemon whose address is taken says so once, in its own words, and exits 1', async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as AddressInfo).port;
  try {
    for (const args of [['--listen', `127.0.0.1:${port}`], ['--listen', 'unix:' + join(tmp, 'free.sock'), '--http', `127.0.0.1:${port}`]]) {
      const r = await runCli(['daemon', '--data', join(tmp, 'busy'), ...args]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^nix-castore: cannot (listen|serve HTTP) on \S+: the address is already in use \(another nix-castore daemon, or another program/);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line, not grpc-js's own as well:\n${r.stderr}`);
    }
  } finally {
    taken.close();
  }
});
