// Issue 18: a single stream that stops sending its request, or stops
// reading its response, while other calls keep its connection busy (so the
// connection's idle timeout never fires) is reset after
// --stream-stall-timeout, on both gRPC paths, and what it held is given
// back; an HTTP client that stops reading a NAR is cut off after it too.
// A client that is slow but moving is not.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { blobServiceDef } from '../../src/grpc/definitions.js';
import { blake3 } from '../../src/castore/digest.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { Writer, putLargeBlob, storeSingleFilePath } from '../helpers/grpc-writes.js';
import { connectUnix, prefix } from '../helpers/h2-flood.js';
import { cacheUrlOf, request } from '../http/http-helpers.js';

const MiB = 1 << 20;
const blobDef = blobServiceDef();

let daemon: DaemonProcess;
let w: Writer;
let url: string;

before(async () => {
  // Through the environment, so that a daemon without the limit starts too (and fails these tests by never resetting).
  daemon = await startDaemonProcess({ extraArgs: ['--http', '127.0.0.1:0'], env: { ...process.env, NIX_CASTORE_STREAM_STALL_TIMEOUT: '1' } });
  w = new Writer(daemon.socket);
  url = await cacheUrlOf(daemon);
});
after(async () => {
  w?.close();
  await daemon?.stop();
});

const frame = (payload: Buffer) => Buffer.concat([prefix(payload.length), payload]);

/** Health checks on `session` every 100 ms until stopped: the connection is never idle. */
function keepBusy(session: http2.ClientHttp2Session): () => void {
  const timer = setInterval(() => {
    const req = session.request({ ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc', te: 'trailers' });
    req.on('error', () => {});
    req.resume();
    req.end(frame(Buffer.alloc(0)));
  }, 100);
  return () => clearInterval(timer);
}

function open(session: http2.ClientHttp2Session, path: string, extra: Record<string, string> = {}): http2.ClientHttp2Stream {
  const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra }, { endStream: false });
  req.on('error', () => {});
  return req;
}

/** The RST_STREAM code the stream ends with (undefined: it ended with a status instead). */
function reset(req: http2.ClientHttp2Stream): Promise<{ rst: number; status?: string }> {
  let st: string | undefined;
  req.on('response', (h) => (st ??= h['grpc-status'] as string | undefined));
  req.on('trailers', (t) => (st ??= t['grpc-status'] as string | undefined));
  return new Promise((r) => req.on('close', () => r({ rst: req.rstCode ?? 0, status: st })));
}

async function bufferedBytes(): Promise<number> {
  const m = /^nix_castore_buffered_bytes (\d+)$/m.exec((await request(url, '/metrics')).body.toString());
  return Number(m?.[1]);
}

for (const [name, extra] of [
  ['the lean path', {}],
  ['grpc-js (a call with grpc-timeout)', { 'grpc-timeout': '3600S' }],
] as const) {
  it(`${name}: a Stat that stops inside its message is reset while its connection stays busy`, { timeout: 60_000 }, async () => {
    const session = connectUnix(daemon.socket);
    const stop = keepBusy(session);
    try {
      const req = open(session, blobDef.Stat.path, extra);
      const ended = reset(req);
      req.resume();
      req.write(prefix(2 * MiB));
      req.write(Buffer.alloc(MiB));
      const { rst, status } = await ended;
      assert.equal(status, undefined, 'no status: the stream was reset');
      assert.equal(rst, http2.constants.NGHTTP2_CANCEL);
      for (let b = await bufferedBytes(); b > 0; b = await bufferedBytes()) await new Promise((r) => setTimeout(r, 50));
    } finally {
      stop();
      session.destroy();
    }
  });
}

it('a Put that stops sending mid-blob is reset and stores nothing', { timeout: 60_000 }, async () => {
  const session = connectUnix(daemon.socket);
  const stop = keepBusy(session);
  try {
    const data = randomBytes(3 * MiB);
    const req = open(session, blobDef.Put.path);
    const ended = reset(req);
    req.resume();
    req.write(frame(blobDef.Put.requestSerialize({ data: data.subarray(0, 2 * MiB) })));
    assert.equal((await ended).rst, http2.constants.NGHTTP2_CANCEL);
    assert.equal((await w.statBlob(blake3(data))).name, 'NOT_FOUND');
  } finally {
    stop();
    session.destroy();
  }
});

it('a Read whose client stops reading the response is reset', { timeout: 60_000 }, async () => {
  const data = randomBytes(16 * MiB);
  assert.equal(await putLargeBlob(daemon.socket, data), 'OK');
  const session = connectUnix(daemon.socket);
  const stop = keepBusy(session);
  try {
    const req = open(session, blobDef.Read.path);
    const ended = reset(req);
    req.end(frame(blobDef.Read.requestSerialize({ digest: blake3(data) })));
    // Never reads: the response waits behind flow control.
    assert.equal((await ended).rst, http2.constants.NGHTTP2_CANCEL);
  } finally {
    stop();
    session.destroy();
  }
});

it('a slow client that keeps sending is not reset', { timeout: 60_000 }, async () => {
  const session = connectUnix(daemon.socket);
  try {
    const parts = Array.from({ length: 12 }, () => randomBytes(64 * 1024));
    const req = open(session, blobDef.Put.path);
    const ended = reset(req);
    req.resume();
    for (const p of parts) {
      req.write(frame(blobDef.Put.requestSerialize({ data: p })));
      await new Promise((r) => setTimeout(r, 300)); // 3.6 s in all, each gap well under the 1 s stall timeout
    }
    req.end();
    const { status } = await ended;
    assert.equal(status, '0', 'the Put succeeded');
    assert.equal((await w.statBlob(blake3(Buffer.concat(parts)))).name, 'OK');
  } finally {
    session.destroy();
  }
});

it('HTTP: a client that stops reading a NAR is cut off after the stall timeout, not the idle timeout', { timeout: 60_000 }, async () => {
  const target = await storeSingleFilePath(daemon.socket, 'stall-nar', randomBytes(32 * MiB));
  const u = new URL(url);
  const s = connect({ host: u.hostname, port: Number(u.port) });
  s.on('error', () => {});
  try {
    s.once('data', () => s.pause()); // the response head, then nothing more
    s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
    // The daemon's log says when it gave up (the client, paused, would not see the close).
    const gaveUp = new RegExp(`GET ${target} 200 \\d+ [\\d.]+ms \\((client went away|connection closed early)\\)`);
    while (!gaveUp.test(daemon.stderr())) await new Promise((r) => setTimeout(r, 100));
  } finally {
    s.destroy();
  }
});

