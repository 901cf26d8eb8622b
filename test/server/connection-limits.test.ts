// Issue 18, finding 2: connections that never send a preface, more
// connections than allowed, and an HTTP client that stops reading a NAR are
// all closed by a real daemon, and well-behaved clients are still served.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { storeSingleFilePath } from '../helpers/grpc-writes.js';
import { cacheUrlOf, request } from '../http/http-helpers.js';
import { checkHealth } from '../../src/grpc/health-client.js';

let daemon: DaemonProcess;
let url: string;

before(async () => {
  daemon = await startDaemonProcess({
    args: ['--store', 'memory://', '--http', '127.0.0.1:0', '--handshake-timeout', '1', '--idle-timeout', '10', '--max-connections', '20'],
  });
  url = await cacheUrlOf(daemon);
});

after(async () => {
  await daemon?.stop();
});

const closed = (s: Socket): Promise<void> => new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));

function silent(target: { path: string } | { host: string; port: number }): Socket {
  const s = connect(target as never);
  s.on('error', () => {});
  s.resume(); // reads, so the server's close is seen
  return s;
}

it('gRPC: connections that never send a preface are closed, also beyond --max-connections', { timeout: 60_000 }, async () => {
  const socks = Array.from({ length: 30 }, () => silent({ path: daemon.socket }));
  await Promise.all(socks.map(closed));
  assert.equal(await checkHealth(`unix://${daemon.socket}`, false, 5000), 'SERVING');
});

it('HTTP: a connection that never sends a request is closed', { timeout: 60_000 }, async () => {
  const u = new URL(url);
  await closed(silent({ host: u.hostname, port: Number(u.port) }));
  assert.equal((await request(url, '/nix-cache-info')).status, 200);
});

it('HTTP: a client that stops reading a NAR is cut off after the idle timeout', { timeout: 60_000 }, async () => {
  const target = await storeSingleFilePath(daemon.socket, 'stall', randomBytes(64 * 1024 * 1024));
  const u = new URL(url);
  const s = silent({ host: u.hostname, port: Number(u.port) });
  s.pause(); // never reads (the daemon's log says when it gave up)
  s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
  while (!new RegExp(`GET ${target} 200 \\d+ [\\d.]+ms \\((client went away|connection closed early)\\)`).test(daemon.stderr())) {
    await new Promise((r) => setTimeout(r, 100));
  }
  s.destroy();
});
