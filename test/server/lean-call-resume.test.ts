// A Put's stream, paused once 4 MiB wait for its writer, is resumed when
// half of them are taken, not once all are: the client's window then
// reopens while the writer still has work, instead of a round trip after
// it ran dry. A real node:http2 server and client on loopback.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { DataPiece, LeanCall } from '../../src/server/lean-call.js';
import { ByteBudget } from '../../src/util/byte-budget.js';

const MiB = 1 << 20;

/** A gRPC-framed BlobChunk of `n` bytes (one data field). */
function blobChunk(n: number): Buffer {
  const head = [0x0a];
  for (let v = n; ; v = Math.floor(v / 128)) {
    if (v < 0x80) {
      head.push(v);
      break;
    }
    head.push((v % 128) | 0x80);
  }
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(head.length + n, 1);
  return Buffer.concat([prefix, Buffer.from(head), Buffer.alloc(n, 7)]);
}

describe('LeanCall flow control', () => {
  it('resumes a paused Put stream with about half its queue still to take', async () => {
    // The daemon's windows (daemon.ts): 4 MiB per stream, 32 MiB per connection.
    const server = http2.createServer({ settings: { initialWindowSize: 4 * MiB } });
    server.on('session', (s) => s.once('localSettings', () => s.setLocalWindowSize(32 * MiB)));
    const gaps: number[] = [];
    let total = 0;
    const done = new Promise<void>((resolve, reject) => {
      server.on('stream', (stream, headers) => {
        const call = new LeanCall(stream, headers, 4 * MiB, 'chunks', new ByteBudget(64 * MiB).holding());
        let taken = 0;
        let pausedAt = -1;
        stream.on('pause', () => (pausedAt = taken));
        stream.on('resume', () => {
          if (pausedAt >= 0) gaps.push(taken - pausedAt);
          pausedAt = -1;
        });
        void (async () => {
          // A slow writer: the queue fills and the stream is paused.
          for (let m = await call.take(); m !== undefined; m = await call.take()) {
            taken += (m as DataPiece).data.length;
            if (taken % MiB < 16 << 10) await new Promise((r) => setTimeout(r, 20));
          }
          total = taken;
          call.reply(Buffer.alloc(0));
        })().then(resolve, reject);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const req = client.request({ ':method': 'POST', ':path': '/x', 'content-type': 'application/grpc' });
      req.on('response', () => {});
      req.resume();
      for (let i = 0; i < 24; i++) if (!req.write(blobChunk(MiB))) await new Promise((r) => req.once('drain', r));
      req.end();
      await done;
      assert.equal(total, 24 * MiB);
      assert.ok(gaps.length > 0, 'the stream was never paused: the test did not test anything');
      // Resumed once empty, each gap would be the whole 4 MiB queue.
      for (const g of gaps) assert.ok(g <= 3 * MiB, `resumed after ${(g / MiB).toFixed(2)} MiB taken since the pause (of the 4 MiB queued)`);
    } finally {
      client.close();
      server.close();
    }
  });
});
