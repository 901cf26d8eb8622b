// One answer per request on both gRPC paths of the daemon: the lean
// node:http2 path (plain calls) and grpc-js (calls with a grpc-timeout).
// A request body that ends inside a message, and a message with the
// compressed flag set while no grpc-encoding was negotiated, are protocol
// errors: INTERNAL on both paths (as grpc-go and tonic answer), and nothing
// of the call is stored.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { status } from '@grpc/grpc-js';
import { blobServiceDef, directoryServiceDef, pathInfoServiceDef } from '../../src/grpc/definitions.js';
import { blake3 } from '../../src/castore/digest.js';
import { directoryDigest } from '../../src/castore/directory.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { Writer, symlinkPathInfo } from '../helpers/grpc-writes.js';
import type { Directory } from '../../src/castore/messages.js';

const blobDef = blobServiceDef();
const dirDef = directoryServiceDef();
const piDef = pathInfoServiceDef();

const frame = (payload: Buffer, flag = 0) => {
  const p = Buffer.alloc(5);
  p[0] = flag;
  p.writeUInt32BE(payload.length, 1);
  return Buffer.concat([p, payload]);
};

type Answer = { code: number; details: string };
const PATHS = { lean: {}, 'grpc-js': { 'grpc-timeout': '30S' } } as const;

let daemon: DaemonProcess;
let w: Writer;
before(async () => {
  daemon = await startDaemonProcess();
  w = new Writer(daemon.socket);
});
after(async () => {
  w.close();
  await daemon.stop();
});

/** One call with exactly these body bytes; the grpc-status it ends with (a reset counts as INTERNAL, as grpc clients see it). */
function rawCall(path: string, body: Buffer, extra: Record<string, string>): Promise<Answer> {
  const session = http2.connect('http://localhost', { createConnection: () => net.connect(daemon.socket) });
  session.on('error', () => {});
  return new Promise<Answer>((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra });
    let headers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (headers = { ...headers, ...t }));
    req.on('data', () => {});
    req.on('error', () => {});
    req.on('close', () => {
      const code = headers['grpc-status'];
      resolve(code === undefined ? { code: status.INTERNAL, details: `stream reset (${req.rstCode})` } : { code: Number(code), details: decodeURIComponent(String(headers['grpc-message'] ?? '')) });
    });
    req.end(body);
  }).finally(() => session.close());
}

async function bothPaths(what: string, path: string, body: Buffer): Promise<Answer> {
  const answers = await Promise.all(Object.values(PATHS).map((extra) => rawCall(path, body, extra)));
  assert.equal(status[answers[1].code], status[answers[0].code], `${what}: grpc-js answered ${JSON.stringify(answers[1])}, the lean path ${JSON.stringify(answers[0])}`);
  return answers[0];
}

describe('a request that ends inside a message → INTERNAL on both paths, nothing stored', () => {
  const data = Buffer.from('the complete first message of a truncated Put');
  const first = frame(blobDef.Put.requestSerialize({ data }));
  const second = frame(blobDef.Put.requestSerialize({ data: Buffer.from(' and more') }));
  for (const [where, cut] of [
    ['inside the prefix', 3],
    ['inside the payload', 9],
  ] as const) {
    it(`blob Put, ${where}`, async () => {
      const a = await bothPaths(where, blobDef.Put.path, Buffer.concat([first, second.subarray(0, cut)]));
      assert.equal(status[a.code], 'INTERNAL', a.details);
      assert.match(a.details, /ended inside a message/);
      assert.equal((await w.statBlob(blake3(data))).name, 'NOT_FOUND', 'the complete first message was not stored');
    });
  }
  it('blob Stat (unary, served by both paths)', async () => {
    const req = frame(blobDef.Stat.requestSerialize({ digest: Buffer.alloc(32), sendChunks: false, sendBao: false }));
    const a = await bothPaths('Stat', blobDef.Stat.path, req.subarray(0, req.length - 4));
    assert.equal(status[a.code], 'INTERNAL', a.details);
  });
  it('directory Put and PathInfo Put (grpc-js on both)', async () => {
    const dir: Directory = { directories: [], files: [], symlinks: [{ name: Buffer.from('truncated'), target: Buffer.from('t') }] };
    const d = frame(dirDef.Put.requestSerialize(dir));
    const a = await bothPaths('directory Put', dirDef.Put.path, Buffer.concat([d, d.subarray(0, 7)]));
    assert.equal(status[a.code], 'INTERNAL', a.details);
    assert.equal((await w.getDirectory(directoryDigest(dir))).name, 'NOT_FOUND');
    const { info, storeDigest } = symlinkPathInfo('truncated-pathinfo');
    const p = frame(piDef.Put.requestSerialize(info));
    const b = await bothPaths('PathInfo Put', piDef.Put.path, p.subarray(0, p.length - 1));
    assert.equal(status[b.code], 'INTERNAL', b.details);
    assert.equal((await w.getPathInfo(storeDigest)).name, 'NOT_FOUND');
  });
});

describe('the compressed flag without grpc-encoding → INTERNAL on both paths, nothing stored', () => {
  it('blob Put', async () => {
    const data = Buffer.from('flagged as compressed, sent raw');
    const a = await bothPaths('flagged Put', blobDef.Put.path, frame(blobDef.Put.requestSerialize({ data }), 1));
    assert.equal(status[a.code], 'INTERNAL', a.details);
    assert.match(a.details, /compressed message.*no compression was negotiated/);
    assert.equal((await w.statBlob(blake3(data))).name, 'NOT_FOUND');
  });
  it('directory Put and PathInfo Put', async () => {
    const dir: Directory = { directories: [], files: [], symlinks: [{ name: Buffer.from('flagged'), target: Buffer.from('t') }] };
    const a = await bothPaths('flagged directory Put', dirDef.Put.path, frame(dirDef.Put.requestSerialize(dir), 1));
    assert.equal(status[a.code], 'INTERNAL', a.details);
    assert.equal((await w.getDirectory(directoryDigest(dir))).name, 'NOT_FOUND');
    const { info, storeDigest } = symlinkPathInfo('flagged-pathinfo');
    const b = await bothPaths('flagged PathInfo Put', piDef.Put.path, frame(piDef.Put.requestSerialize(info), 1));
    assert.equal(status[b.code], 'INTERNAL', b.details);
    assert.equal((await w.getPathInfo(storeDigest)).name, 'NOT_FOUND');
  });
  it('the daemon keeps serving', async () => {
    assert.equal((await w.putBlob(Buffer.from('after the protocol errors'))).name, 'OK');
    assert.doesNotMatch(daemon.stderr(), /ERR_|Unhandled|uncaught/i);
  });
});
