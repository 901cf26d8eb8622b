// Issue 18, finding 2: connections that never send a preface, more
// connections than allowed, and an HTTP client that stops reading a NAR are
// all closed by a real daemon, and well-behaved clients are still served.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { blobServiceDef } from '../../src/grpc/definitions.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { Writer } from '../helpers/grpc-writes.js';
import { cacheUrlOf, request } from '../http/http-helpers.js';
import { checkHealth } from '../../src/grpc/health-client.js';
import { blake3 } from '../../src/castore/digest.js';
import { calculateNar, type Castore } from '../../src/store/render-nar.js';
import type { PathInfo } from '../../src/store/messages.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';

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

/** One blob Put in 1 MiB messages (a message is at most 4 MiB). */
function putLarge(data: Buffer): Promise<string> {
  const client = new grpc.Client(`unix://${daemon.socket}`, grpc.credentials.createInsecure());
  const m = blobServiceDef().Put;
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), (err) => {
      client.close();
      resolve(err ? grpc.status[err.code] : 'OK');
    });
    call.on('error', () => {});
    for (let off = 0; off < data.length; off += 1 << 20) call.write({ data: data.subarray(off, off + (1 << 20)) });
    call.end();
  });
}

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
  const data = randomBytes(64 * 1024 * 1024);
  const w = new Writer(daemon.socket);
  try {
    assert.equal(await putLarge(data), 'OK');
    const storeDigest = Buffer.from(blake3(Buffer.from('stall')).subarray(0, 20));
    const node = { type: 'file' as const, name: Buffer.from(`${nix32(storeDigest)}-stall`), digest: blake3(data), size: data.length, executable: false };
    const castore = { blobs: { read: async () => (async function* () { yield data; })() } } as unknown as Castore;
    const nar = await calculateNar(node, castore);
    const info: PathInfo = { node, references: [], narinfo: { narSize: nar.narSize, narSha256: nar.narSha256, signatures: [], referenceNames: [] } };
    assert.equal((await w.putPathInfo(info)).name, 'OK');
    const u = new URL(url);
    const s = silent({ host: u.hostname, port: Number(u.port) });
    s.pause(); // never reads (the daemon's log says when it gave up)
    const target = `/nar/${nix32(storeDigest)}-${nix32(nar.narSha256)}.nar`;
    s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
    for (;;) {
      if (new RegExp(`GET ${target} 200 \\d+ [\\d.]+ms \\((client went away|connection closed early)\\)`).test(daemon.stderr())) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    s.destroy();
  } finally {
    w.close();
  }
});
