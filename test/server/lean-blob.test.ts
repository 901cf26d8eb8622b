// BlobService Stat and Put have two transports in the daemon: the lean
// node:http2 path for plain calls, grpc-js for calls with compression or a
// deadline (lean-blob.ts). Both must give the same answers, byte for byte
// and status for status.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { status } from '@grpc/grpc-js';
import { blobBatchServiceDef, blobServiceDef } from '../../src/grpc/definitions.js';
import { blake3 } from '../../src/castore/digest.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { blobChunkDataStart } from '../../src/grpc/h2/framing.js';

const def = blobServiceDef();
const raw = { path: def.Stat.path, requestSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };

type Outcome = { ok: Buffer } | { code: number; details: string };

/** The three ways of calling: plain (lean path), gzip-compressed and with a deadline (both grpc-js). */
const KINDS = {
  plain: {},
  gzip: { 'grpc.default_compression_algorithm': 2 },
  deadline: {},
} as const;
type Kind = keyof typeof KINDS;

let daemon: DaemonProcess;
const clients = new Map<Kind, grpc.Client>();

const callOptions = (kind: Kind): grpc.CallOptions => (kind === 'deadline' ? { deadline: Date.now() + 30_000 } : {});

function settle(resolve: (o: Outcome) => void) {
  return (err: grpc.ServiceError | null, res?: Buffer) => resolve(err ? { code: err.code, details: err.details } : { ok: res! });
}

/** A Stat with these raw request bytes. */
function stat(kind: Kind, body: Buffer): Promise<Outcome> {
  return new Promise((resolve) =>
    clients.get(kind)!.makeUnaryRequest(raw.path, raw.requestSerialize, raw.responseDeserialize, body, new grpc.Metadata(), callOptions(kind), settle(resolve)),
  );
}

/** A unary call with these raw request bytes to `path`. */
function unaryRaw(kind: Kind, path: string, body: Buffer): Promise<Outcome> {
  return new Promise((resolve) =>
    clients.get(kind)!.makeUnaryRequest(path, raw.requestSerialize, raw.responseDeserialize, body, new grpc.Metadata(), callOptions(kind), settle(resolve)),
  );
}

/** A client stream of raw messages to `path`. */
function stream(kind: Kind, path: string, msgs: Buffer[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const call = clients.get(kind)!.makeClientStreamRequest(path, raw.requestSerialize, raw.responseDeserialize, new grpc.Metadata(), callOptions(kind), settle(resolve));
    for (const m of msgs) call.write(m);
    call.end();
  });
}

const statReq = (digest: Uint8Array) => def.Stat.requestSerialize({ digest, sendChunks: false, sendBao: false });
const chunk = (data: Uint8Array) => def.Put.requestSerialize({ data });

describe('blobChunkDataStart', () => {
  it('finds the data of a chunk that is one data field, and nothing else', () => {
    for (const n of [0, 1, 127, 128, 16_383, 16_384, 1 << 20, (1 << 28) + 5]) {
      const len = Buffer.from([0x0a, ...varint(n)]);
      assert.equal(blobChunkDataStart(len.length + n, Buffer.concat([len, Buffer.alloc(3)])), len.length, `length ${n}`);
      // More bytes than the field: another field follows.
      assert.equal(blobChunkDataStart(len.length + n + 2, len), undefined, `length ${n} + a field`);
    }
    assert.equal(blobChunkDataStart(10, Buffer.from([0x12, 0x08])), undefined, 'another field first');
    assert.equal(blobChunkDataStart(200, Buffer.from([0x0a, 0xc5])), undefined, 'length varint cut off');
    assert.equal(blobChunkDataStart(200, Buffer.from([0x0a])), undefined, 'no length at all');
  });
});

function varint(n: number): number[] {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return out;
}

describe('BlobService on the lean path and on grpc-js', () => {
  before(async () => {
    daemon = await startDaemonProcess({ args: ['--store', 'memory://'] });
    for (const [kind, opts] of Object.entries(KINDS)) {
      clients.set(kind as Kind, new grpc.Client(`unix://${daemon.socket}`, grpc.credentials.createInsecure(), opts));
    }
  });
  after(async () => {
    for (const c of clients.values()) c.close();
    await daemon.stop();
  });

  /** `codeOnly`: grpc-js words some messages its own way ("server streaming method" for a unary one). */
  async function same(what: string, call: (kind: Kind) => Promise<Outcome>, codeOnly = false): Promise<Outcome> {
    const plain = await call('plain');
    for (const kind of ['gzip', 'deadline'] as const) {
      const other = await call(kind);
      if (codeOnly && 'code' in other && 'code' in plain) assert.equal(other.code, plain.code, `${what}: ${kind} differs from plain`);
      else assert.deepEqual(other, plain, `${what}: ${kind} differs from plain`);
    }
    return plain;
  }

  it('Put stores the blob and answers its digest; Stat then finds it', async () => {
    const data = Buffer.alloc(300_000, 'lean');
    const put = await same('Put', (k) => stream(k, def.Put.path, [chunk(data.subarray(0, 100_000)), chunk(data.subarray(100_000))]));
    assert.ok('ok' in put);
    assert.deepEqual(def.Put.responseDeserialize(put.ok).digest, blake3(data));
    const found = await same('Stat', (k) => stat(k, statReq(blake3(data))));
    assert.ok('ok' in found);
  });

  it('an empty Put stores the empty blob', async () => {
    const put = await same('empty Put', (k) => stream(k, def.Put.path, []));
    assert.ok('ok' in put);
    assert.deepEqual(def.Put.responseDeserialize(put.ok).digest, blake3(new Uint8Array(0)));
  });

  it('errors: absent blob, bad digest length, malformed request, two requests for a unary method', async () => {
    const absent = await same('absent', (k) => stat(k, statReq(Buffer.alloc(32, 9))));
    assert.equal((absent as { code: number }).code, status.NOT_FOUND);
    const short = await same('short digest', (k) => stat(k, statReq(Buffer.alloc(31))));
    assert.equal((short as { code: number }).code, status.INVALID_ARGUMENT);
    const malformed = await same('malformed Stat', (k) => stat(k, Buffer.from([0x0a, 0x20, 0x01])));
    assert.equal((malformed as { code: number }).code, status.INVALID_ARGUMENT);
    const badChunk = await same('malformed Put', (k) => stream(k, def.Put.path, [Buffer.from([0x0a, 0xff])]));
    assert.equal((badChunk as { code: number }).code, status.INVALID_ARGUMENT);
    const twice = await same('two Stat requests', (k) => stream(k, def.Stat.path, [statReq(Buffer.alloc(32)), statReq(Buffer.alloc(32))]), true);
    assert.equal((twice as { code: number }).code, status.UNIMPLEMENTED);
  });

  it('large chunks of any shape: the lean path streams plain ones and decodes the rest whole', async () => {
    const data = Buffer.alloc(3 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
    const a = data.subarray(0, 1 << 20);
    const b = data.subarray(1 << 20);
    // Plain single-field chunks (taken as pieces); one with an unknown field after
    // the data; one that holds the data field twice (the last one counts).
    const unknownField = Buffer.concat([chunk(b), Buffer.from([0x78, 0x01])]);
    const twice = Buffer.concat([chunk(Buffer.alloc(70_000, 1)), chunk(b)]);
    for (const [what, msgs] of [
      ['plain', [chunk(a), chunk(b)]],
      ['unknown field', [chunk(a), unknownField]],
      ['data twice', [chunk(a), twice]],
    ] as const) {
      const put = await same(what, (k) => stream(k, def.Put.path, [...msgs]));
      assert.ok('ok' in put, what);
      assert.deepEqual(def.Put.responseDeserialize(put.ok).digest, blake3(data), what);
    }
  });

  it('BlobBatchService: a batch spanning DATA frames is stored and found; a malformed one is refused', async () => {
    const batch = blobBatchServiceDef();
    const blobs = Array.from({ length: 400 }, (_, i) => Buffer.alloc(i * 37 + (i % 50 === 0 ? 100_000 : 0), `batch ${i}`)).map((data) => ({ digest: blake3(data), data }));
    const req = batch.Put.requestSerialize({ blobs });
    assert.ok(req.length > 2 << 20, 'spans many DATA frames');
    const put = await same('batch Put', (k) => unaryRaw(k, batch.Put.path, req));
    assert.ok('ok' in put, JSON.stringify(put));
    const has = await same('batch Has', (k) => unaryRaw(k, batch.Has.path, batch.Has.requestSerialize({ digests: [...blobs.map((b) => b.digest), Buffer.alloc(32, 1)] })));
    assert.ok('ok' in has);
    const present = batch.Has.responseDeserialize(has.ok).present;
    assert.deepEqual(present, [...blobs.map(() => true), false]);
    // A wrong digest stores nothing, also from the parsed path.
    const wrong = blobs.slice(0, 3).map((b, i) => ({ digest: i === 2 ? Buffer.alloc(32, 7) : blake3(Buffer.concat([b.data, Buffer.from('x')])), data: Buffer.concat([b.data, Buffer.from('x'), Buffer.alloc(1 << 20)]) }));
    const refused = await same('wrong digest', (k) => unaryRaw(k, batch.Put.path, batch.Put.requestSerialize({ blobs: wrong })));
    assert.equal((refused as { code: number }).code, status.INVALID_ARGUMENT);
    // Truncated: the last blob's length runs past the end of the message.
    const cut = Buffer.concat([req.subarray(0, req.length - 1)]);
    const malformed = await same('malformed batch', (k) => unaryRaw(k, batch.Put.path, cut), true);
    assert.equal((malformed as { code: number }).code, status.INVALID_ARGUMENT);
  });

  it('advertises 4 MiB stream windows and DATA frames of up to 1 MiB', async () => {
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(daemon.socket) });
    try {
      const settings = await new Promise<http2.Settings>((resolve, reject) => {
        session.once('remoteSettings', resolve);
        session.once('error', reject);
      });
      assert.equal(settings.maxFrameSize, 1 << 20);
      assert.equal(settings.initialWindowSize, 4 << 20);
    } finally {
      session.close();
    }
  });

  it('the snix.* paths are served the same way', async () => {
    const data = Buffer.from('snix');
    const put = await same('snix Put', (k) => stream(k, def.Put.path.replace('/tvix.', '/snix.'), [chunk(data)]));
    assert.ok('ok' in put);
    assert.deepEqual(def.Put.responseDeserialize(put.ok).digest, blake3(data));
  });
});
