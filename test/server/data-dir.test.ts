// The daemon's data directory is ready at start: created when missing (so
// `nix-castore fsck --data DIR` works on a freshly started daemon's DIR),
// refused with a clear error when it cannot be created, and served
// read-only when the daemon's user cannot write it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, startDaemonProcess, waitForSocket } from '../helpers/daemon.js';
import { runCli } from '../copy/run-cli.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { isKind } from '../../src/castore/errors.js';

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-datadir-'));
});
after(() => rm(tmp, { recursive: true, force: true }));

describe("the daemon's data directory", () => {
  it('is created at start: fsck --data works on a fresh daemon before any write', async () => {
    const data = join(tmp, 'fresh', 'nested', 'data');
    const d = await startDaemonProcess({ args: ['--data', data] });
    try {
      const r = await runCli(['fsck', '--data', data]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout + r.stderr, /ok, 0 warnings/);
    } finally {
      await d.stop();
    }
  });

  it('that cannot be created is a usage error that says what to do', async () => {
    const file = join(tmp, 'a-file');
    await writeFile(file, 'not a directory');
    // A daemon that starts serving anyway is stopped, and fails the test.
    const r = await runCli(['daemon', '--listen', `unix:${join(tmp, 'never.sock')}`, '--data', join(file, 'data')], { killAfter: (e) => /serving/.test(e) });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /cannot create the data directory .*a-file\/data: .*; create it \(writable by this user\) or give another --data/);
  });

  it("that its user cannot write is served read-only, with a notice", async () => {
    const dir = join(tmp, 'ro');
    await mkdir(join(dir, 'data'), { recursive: true });
    await chmod(tmp, 0o755);
    await chmod(dir, 0o777); // the socket goes here; data/ stays root's, mode 755
    const socket = join(dir, 'd.sock');
    // setpriv execs the daemon itself as nobody: its PID is the daemon's.
    const child = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, CLI, 'daemon', '--listen', `unix:${socket}`, '--data', join(dir, 'data')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr!.on('data', (c) => (log += c));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      await waitForSocket(socket, child, () => log);
      assert.match(log, /data is not writable: serving it read-only/);
      assert.match(log, /; read-only/);
      const store = openStore(sameAddr(`grpc+unix://${socket}`));
      try {
        await assert.rejects(putBytes(store.blobs, Buffer.from('refused')), (e) => isKind(e, 'read-only'));
      } finally {
        await store.close();
      }
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
