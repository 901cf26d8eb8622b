// The lean client (through GrpcBlobService) against a raw node:http2 server
// that answers the way other gRPC servers, proxies or a broken peer might:
// odd framing, trailers-only answers, HTTP errors, resets.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GrpcBlobService, splitChunk } from '../../src/grpc/backends/grpc-blob-service.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';
import { BlobChunkCodec, PutBlobResponseCodec, StatBlobResponseCodec } from '../../src/castore/messages.js';
import { blake3 } from '../../src/castore/digest.js';
import { isKind, type CastoreError, type ErrorKind } from '../../src/castore/errors.js';
import { framed } from '../../src/grpc/h2/framing.js';

type Handler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;

const GRPC = { ':status': 200, 'content-type': 'application/grpc' };
const DIGEST = blake3(Buffer.from('some blob'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let tmp: string;
let server: http2.Http2Server;
let blobs: GrpcBlobService;
/** What the server does with the next streams; set per test. */
let handler: Handler;
let seen: http2.IncomingHttpHeaders[];
let sessions = 0;
/** How each stream ended on the server: its RST code (0 = closed normally). */
let resets: number[];
/** Streams the server has seen that have not closed yet. */
let unclosed = 0;

/** Answers with these DATA writes, each given time to go out as DATA frames of its own, then the trailers. */
async function reply(stream: http2.ServerHttp2Stream, writes: Buffer[], trailers: http2.OutgoingHttpHeaders = { 'grpc-status': '0' }) {
  stream.respond(GRPC, { waitForTrailers: true });
  stream.once('wantTrailers', () => stream.sendTrailers(trailers));
  for (const w of writes) {
    stream.write(w);
    await sleep(5);
  }
  stream.end();
}

const chunk = (data: Buffer | string) => framed(BlobChunkCodec.encode({ data: Buffer.from(data) }));

function rejectsWith(kind: ErrorKind, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(isKind(err, kind), `expected a CastoreError '${kind}', got ${err instanceof Error ? `${err.name} ${(err as CastoreError).kind}: ${err.message}` : err}`);
    assert.match((err as Error).message, pattern);
    return true;
  };
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-h2-wire-'));
  const socket = join(tmp, 'raw.sock');
  server = http2.createServer();
  server.on('session', () => sessions++);
  server.on('stream', (stream, headers) => {
    seen.push(headers);
    stream.on('error', () => {});
    unclosed++;
    stream.on('close', () => {
      unclosed--;
      resets.push(stream.rstCode);
    });
    handler(stream, headers);
  });
  await new Promise<void>((r) => server.listen(socket, r));
  blobs = new GrpcBlobService(`grpc+unix://${socket}`);
});

beforeEach(async () => {
  // The last test's streams close first (on a loaded machine their resets came in late, counted here).
  for (const deadline = Date.now() + 10_000; unclosed > 0 && Date.now() < deadline; ) await sleep(5);
  seen = [];
  resets = [];
});

after(async () => {
  await blobs?.close();
  await new Promise((r) => server?.close(r));
  await rm(tmp, { recursive: true, force: true });
});

describe('lean gRPC client on the wire', () => {
  it('sends gRPC request headers: POST, te: trailers, application/grpc, no compression', async () => {
    handler = (stream) => reply(stream, [framed(StatBlobResponseCodec.encode({ chunks: [], bao: Buffer.alloc(0) }))]);
    assert.deepEqual(await blobs.stat(DIGEST), { chunks: [] });
    const h = seen[0];
    assert.equal(h[':method'], 'POST');
    assert.equal(h[':path'], '/tvix.castore.v1.BlobService/Stat');
    assert.equal(h[':authority'], 'localhost');
    assert.equal(h[':scheme'], 'http');
    assert.equal(h['content-type'], 'application/grpc');
    assert.equal(h.te, 'trailers');
    assert.match(h['user-agent'] ?? '', /nix-castore/);
    assert.equal(h['grpc-encoding'], undefined);
    assert.equal(h['grpc-accept-encoding'], undefined);
    assert.equal(h.authorization, undefined, 'no token configured');
  });

  it('reads a message split over several DATA frames, and a message bigger than one frame', async () => {
    const small = chunk('split across frames');
    const big = Buffer.alloc(100_000, 'b');
    const bigFrame = chunk(big);
    // The prefix cut in two, the payload in three; then 100 kB (16 KiB DATA frames at most).
    handler = (stream) =>
      reply(stream, [small.subarray(0, 2), small.subarray(2, 7), small.subarray(7, 12), small.subarray(12), bigFrame]);
    const got = await readAll(blobs, DIGEST);
    assert.deepEqual(got, Buffer.concat([Buffer.from('split across frames'), big]));
  });

  it('reads two messages from one DATA frame', async () => {
    handler = (stream) => reply(stream, [Buffer.concat([chunk('one '), chunk('two')])]);
    const stream = await blobs.read(DIGEST);
    const parts: string[] = [];
    for await (const c of stream!) parts.push(Buffer.from(c).toString());
    assert.deepEqual(parts, ['one ', 'two']);
  });

  it('a unary answer split over DATA frames', async () => {
    const res = framed(StatBlobResponseCodec.encode({ chunks: [{ digest: DIGEST, size: 9 }], bao: Buffer.alloc(0) }));
    handler = (stream) => reply(stream, [res.subarray(0, 1), res.subarray(1, 20), res.subarray(20)]);
    const st = await blobs.stat(DIGEST);
    assert.equal(st?.chunks.length, 1);
    assert.deepEqual(Buffer.from(st!.chunks[0].digest), DIGEST);
    assert.equal(st!.chunks[0].size, 9);
  });

  it('a compressed message is an error (no compression was negotiated)', async () => {
    const m = chunk('zipped?');
    m[0] = 1;
    handler = (stream) => reply(stream, [m]);
    await assert.rejects(readAll(blobs, DIGEST), rejectsWith('internal', /^Read b3:.*INTERNAL: .*compressed/));
    handler = (stream) => reply(stream, [m]);
    await assert.rejects(blobs.stat(DIGEST), rejectsWith('internal', /compressed/));
  });

  it('a message over 4 MiB is RESOURCE_EXHAUSTED (too-large), and the stream is reset', async () => {
    handler = (stream) => reply(stream, [chunk(Buffer.alloc(4 * 1024 * 1024 + 1))]);
    await assert.rejects(readAll(blobs, DIGEST), rejectsWith('too-large', /RESOURCE_EXHAUSTED: received a message larger than max/));
    await sleep(50);
    assert.deepEqual(resets, [http2.constants.NGHTTP2_CANCEL]);
  });

  it('a trailers-only NOT_FOUND (grpc-status 5) means absent', async () => {
    handler = (stream) => stream.respond({ ...GRPC, 'grpc-status': '5', 'grpc-message': 'no such blob' }, { endStream: true });
    assert.equal(await blobs.stat(DIGEST), undefined);
    assert.equal(await blobs.read(DIGEST), undefined);
  });

  it('a trailers-only error keeps its code and its percent-decoded message', async () => {
    handler = (stream) => stream.respond({ ...GRPC, 'grpc-status': '14', 'grpc-message': 'try%20again%3A %E2%9C%93' }, { endStream: true });
    await assert.rejects(blobs.stat(DIGEST), rejectsWith('unavailable', /UNAVAILABLE: try again: ✓$/));
    handler = (stream) => {
      stream.resume();
      stream.respond({ ...GRPC, 'grpc-status': '3', 'grpc-message': 'invalid digest length' }, { endStream: true });
    };
    await assert.rejects(putBytes(blobs, Buffer.from('x')), rejectsWith('invalid', /^blob Put: INVALID_ARGUMENT: invalid digest length$/));
  });

  it('NOT_FOUND after the first message of a Read is an error, not "absent"', async () => {
    handler = (stream) => reply(stream, [chunk('partial')], { 'grpc-status': '5', 'grpc-message': 'gone' });
    await assert.rejects(readAll(blobs, DIGEST), rejectsWith('not-found', /NOT_FOUND: gone/));
  });

  it('HTTP 503 from a proxy is UNAVAILABLE; other HTTP errors map as the gRPC spec says', async () => {
    const httpError = (code: number): Handler => (stream) => {
      stream.resume();
      stream.respond({ ':status': code, 'content-type': 'text/html' });
      stream.end('<html>busy</html>');
    };
    handler = httpError(503);
    await assert.rejects(blobs.stat(DIGEST), rejectsWith('unavailable', /UNAVAILABLE: received HTTP status 503/));
    await assert.rejects(putBytes(blobs, Buffer.from('x')), rejectsWith('unavailable', /HTTP status 503/));
    await assert.rejects(blobs.read(DIGEST), rejectsWith('unavailable', /HTTP status 503/));
    handler = httpError(401);
    await assert.rejects(blobs.stat(DIGEST), rejectsWith('unauthenticated', /UNAUTHENTICATED/));
    handler = httpError(404);
    await assert.rejects(blobs.stat(DIGEST), rejectsWith('internal', /UNIMPLEMENTED/));
    handler = (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.end('hello');
    };
    await assert.rejects(blobs.stat(DIGEST), rejectsWith('internal', /UNKNOWN: .*content-type text\/plain/));
  });

  it('a stream reset by the server: REFUSED_STREAM is UNAVAILABLE, others INTERNAL', async () => {
    handler = (stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    await assert.rejects(blobs.stat(DIGEST), rejectsWith('unavailable', /REFUSED_STREAM/));
    handler = (stream) => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    await assert.rejects(blobs.stat(DIGEST), rejectsWith('internal', /INTERNAL_ERROR/));
    handler = (stream) => {
      stream.respond(GRPC);
      stream.end(); // no trailers, no grpc-status
    };
    await assert.rejects(blobs.stat(DIGEST), rejectsWith('internal', /without a gRPC status/));
  });

  it('GOAWAY: the call in flight finishes, the next one dials a new connection', async () => {
    const ok = framed(StatBlobResponseCodec.encode({ chunks: [], bao: Buffer.alloc(0) }));
    const before = sessions;
    handler = (stream) => {
      stream.session!.goaway(http2.constants.NGHTTP2_NO_ERROR);
      void reply(stream, [ok]);
    };
    assert.deepEqual(await blobs.stat(DIGEST), { chunks: [] });
    handler = (stream) => reply(stream, [ok]);
    assert.deepEqual(await blobs.stat(DIGEST), { chunks: [] });
    assert.equal(sessions, before + 1, 'a new connection');
    assert.deepEqual(await blobs.stat(DIGEST), { chunks: [] });
    assert.equal(sessions, before + 1, 'and it is kept');
  });

  it('a unary answer must be exactly one message', async () => {
    const one = framed(StatBlobResponseCodec.encode({ chunks: [], bao: Buffer.alloc(0) }));
    handler = (stream) => reply(stream, [one, one]);
    await assert.rejects(blobs.stat(DIGEST), rejectsWith('internal', /UNIMPLEMENTED: .*more than one/));
    handler = (stream) => reply(stream, []);
    await assert.rejects(blobs.stat(DIGEST), rejectsWith('internal', /UNIMPLEMENTED: .*no response message/));
  });

  it('a Put refused while it still sends stops sending: the writes fail with the status', async () => {
    handler = (stream) => {
      stream.once('data', () =>
        stream.respond({ ...GRPC, 'grpc-status': '16', 'grpc-message': 'writes need a token' }, { endStream: true }),
      );
    };
    const w = blobs.put();
    const err = await (async () => {
      try {
        for (let i = 0; i < 100; i++) await w.write(Buffer.alloc(1 << 20, i));
        await w.close();
      } catch (e) {
        return e;
      }
    })();
    assert.ok(rejectsWith('unauthenticated', /^blob Put: UNAUTHENTICATED: writes need a token$/)(err));
    await sleep(50);
    assert.deepEqual(resets, [http2.constants.NGHTTP2_CANCEL], 'the client reset the stream rather than send 100 MiB');
  });

  it('abort() resets the Put stream with CANCEL and sends no END_STREAM', async () => {
    const events: string[] = [];
    handler = (stream) => {
      stream.resume();
      // A half-close would end the request before the reset aborts it.
      stream.on('end', () => events.push('end'));
      stream.on('aborted', () => events.push('aborted'));
    };
    const w = blobs.put();
    await w.write(Buffer.from('never finished'));
    await sleep(20);
    await w.abort();
    await sleep(50);
    assert.deepEqual(resets, [http2.constants.NGHTTP2_CANCEL]);
    assert.equal(events[0], 'aborted');
  });

  it('a Put answered with a digest, its messages reassembled by the server', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024 + 5, 7);
    handler = (stream) => {
      const parts: Buffer[] = [];
      stream.on('data', (d: Buffer) => parts.push(d));
      stream.on('end', () => {
        // Take the BlobChunks apart again: 5-byte prefix, then the message.
        const all = Buffer.concat(parts);
        const got: Buffer[] = [];
        for (let pos = 0; pos < all.length; ) {
          const len = all.readUInt32BE(pos + 1);
          got.push(Buffer.from(BlobChunkCodec.decode(all.subarray(pos + 5, pos + 5 + len)).data));
          pos += 5 + len;
        }
        void reply(stream, [framed(PutBlobResponseCodec.encode({ digest: blake3(Buffer.concat(got)) }))]);
      });
    };
    assert.deepEqual(await putBytes(blobs, data), blake3(data));
  });

  it('a Put releases every chunk it was given, large (sent as is) and small (copied)', async () => {
    const sizes = [3 << 20, 100, 0, 1 << 20, 70_000];
    const data = sizes.map((n, i) => Buffer.alloc(n, i + 1));
    handler = (stream) => {
      const parts: Buffer[] = [];
      stream.on('data', (d: Buffer) => parts.push(d));
      stream.on('end', () => {
        const all = Buffer.concat(parts);
        const got: Buffer[] = [];
        for (let pos = 0; pos < all.length; pos += 5 + all.readUInt32BE(pos + 1)) {
          got.push(Buffer.from(BlobChunkCodec.decode(all.subarray(pos + 5, pos + 5 + all.readUInt32BE(pos + 1))).data));
        }
        void reply(stream, [framed(PutBlobResponseCodec.encode({ digest: blake3(Buffer.concat(got)) }))]);
      });
    };
    const w = blobs.put();
    const released: number[] = [];
    for (let i = 0; i < data.length; i++) await w.write(data[i], () => released.push(i));
    assert.deepEqual(await w.close(), blake3(Buffer.concat(data)));
    assert.deepEqual([...released].sort(), [0, 1, 2, 3, 4]);
  });

  it('a large chunk goes out as field header and data: the same bytes as the whole message', () => {
    for (const n of [0, 100, (64 << 10) - 1, 64 << 10, (1 << 21) - 1, 1 << 21, (3 << 20) + 5]) {
      const chunk = { data: Buffer.alloc(n, n & 0xff) };
      const parts = splitChunk(chunk);
      if (n < 64 << 10) {
        assert.equal(parts, undefined, `${n} bytes are serialized whole`);
        continue;
      }
      assert.ok(parts && parts.length === 2 && parts[1] === chunk.data, `${n} bytes: the data itself is sent`);
      assert.ok(Buffer.concat(parts).equals(BlobChunkCodec.encode(chunk)), `${n} bytes`);
    }
  });

  it('breaking out of a Read cancels it', async () => {
    handler = (stream) => reply(stream, Array.from({ length: 20 }, () => chunk(Buffer.alloc(1000))));
    const stream = await blobs.read(DIGEST);
    for await (const c of stream!) {
      assert.equal(c.length, 1000);
      break;
    }
    await sleep(200);
    assert.deepEqual(resets, [http2.constants.NGHTTP2_CANCEL]);
  });
});
