// A store that stops answering (a daemon stopped with SIGSTOP, a listener
// that is not a daemon) no longer holds a client for ever: while calls are
// in flight the client PINGs, and a PING unanswered by the next one ends the
// session with an error that says so. A live daemon answers them.
// NIX_CASTORE_PING_MS shortens the interval (20 s by default).
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, startDaemonProcess } from '../helpers/daemon.js';
import { nixEnv, requireNix, runNix } from '../helpers/nix.js';

let tmp: string;
let storePath: string;
before(async () => {
  await requireNix();
  tmp = await mkdtemp(join(tmpdir(), 'h2-liveness-'));
  await writeFile(join(tmp, 'alive.txt'), `liveness ${Date.now()}\n`);
  storePath = (await runNix('nix-store', ['--add', join(tmp, 'alive.txt')])).stdout.toString().trim();
});
after(() => rm(tmp, { recursive: true, force: true }));

const cli = (args: string[], pingMs: number) =>
  new Promise<{ status: number | null; stderr: string }>((resolve) => {
    // Asynchronous: the daemon under test is this process's child, and must not be blocked on.
    const c = spawn(process.execPath, [CLI, ...args], { env: { ...nixEnv(), NIX_CASTORE_PING_MS: String(pingMs) }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr!.on('data', (d) => (stderr += d));
    c.once('exit', (status) => resolve({ status, stderr }));
  });

it('a listener that accepts and never answers: copy fails saying so, instead of hanging', async () => {
  const mute = net.createServer((c) => c.resume());
  await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
  const port = (mute.address() as net.AddressInfo).port;
  try {
    const r = await cli(['copy', '-q', '--store', `grpc+http://127.0.0.1:${port}`, storePath], 300);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /UNAVAILABLE: no answer from grpc\+http:\/\/127\.0\.0\.1:\d+ in 1 s \(a daemon stopped, or something else listening there\)/);
  } finally {
    mute.close();
  }
});

it('a daemon stopped with SIGSTOP: path-info fails saying so; once it runs again it answers', async () => {
  const d = await startDaemonProcess();
  try {
    const copied = await cli(['copy', '-q', '--store', d.addr, storePath], 200);
    assert.equal(copied.status, 0, `a live daemon answers the PINGs: ${copied.stderr}`);
    d.child.kill('SIGSTOP');
    const r = await cli(['path-info', '--store', d.addr, storePath], 300);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /no answer from grpc\+unix:\/\/\S+ in 1 s/);
    d.child.kill('SIGCONT');
    const again = await cli(['path-info', '--store', d.addr, storePath], 300);
    assert.equal(again.status, 0, again.stderr);
  } finally {
    d.child.kill('SIGCONT');
    await d.stop();
  }
});

it('the grpc-js clients too (pin, stats): a stopped daemon makes them fail saying so, instead of hanging', async () => {
  const d = await startDaemonProcess();
  try {
    const live = await cli(['pin', 'list', '--store', d.addr], 300);
    assert.equal(live.status, 0, live.stderr);
    d.child.kill('SIGSTOP');
    for (const args of [['pin', 'list', '--store', d.addr], ['stats', '--store', d.addr]]) {
      // Not a timing assertion: a client that waits for ever is stopped here so the test ends.
      const r = await Promise.race([cli(args, 300), new Promise<{ status: null; stderr: string }>((res) => setTimeout(() => res({ status: null, stderr: 'still waiting after 60 s' }), 60_000))]);
      assert.equal(r.status, 1, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, /no answer from grpc\+unix:\/\/\S+ in 1 s \(a daemon stopped/);
    }
  } finally {
    d.child.kill('SIGCONT');
    await d.stop();
  }
});
