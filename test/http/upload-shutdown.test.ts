// SIGTERM while a `nix copy --to` upload is in flight: the daemon cuts the
// upload, lets its handler clean up and log what happened to it, and only
// then closes the staging and the store. The access log is what an operator
// reads afterwards; an upload that vanished from it could not be told from
// one that never arrived.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { startDaemonProcess } from '../helpers/daemon.js';
import * as nixbase32 from '../../src/nix/nixbase32.js';
import { cacheUrlOf, request } from './http-helpers.js';

/** A NAR string: length (u64 LE), bytes, zero padding to 8. */
function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(b.length));
  return Buffer.concat([len, b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
}

/** The NAR of one regular file holding `contents`. */
function fileNar(contents: Buffer): Buffer {
  return Buffer.concat(['nix-archive-1', '(', 'type', 'regular', 'contents'].map(str).concat([str(contents), str(')')]));
}

async function receivedHttpBytes(cache: string): Promise<number> {
  const r = await request(cache, '/metrics');
  const m = /^nix_castore_received_bytes_total\{listener="http"\} (\d+)/m.exec(r.body.toString());
  return m ? Number(m[1]) : 0;
}

describe('daemon SIGTERM during an HTTP upload', () => {
  it('the cut upload is logged (400, cut short) before the daemon exits 0', async () => {
    const d = await startDaemonProcess({ extraArgs: ['--http', '127.0.0.1:0'] });
    const cache = await cacheUrlOf(d);
    const nar = fileNar(randomBytes(8 << 20));
    const target = `/nar/${nixbase32.encode(createHash('sha256').update(nar).digest())}.nar`;
    const sent = nar.subarray(0, nar.length >> 1);
    const client = net.connect(Number(new URL(cache).port), '127.0.0.1');
    client.on('error', () => {});
    client.resume();
    try {
      await new Promise<void>((resolve) => client.once('connect', resolve));
      client.write(`PUT ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: ${nar.length}\r\n\r\n`);
      await new Promise<void>((resolve) => client.write(sent, () => resolve()));
      // In flight: the daemon has taken in what was sent (its socket counters).
      while ((await receivedHttpBytes(cache)) < sent.length) await new Promise((r) => setTimeout(r, 20));

      const code = await d.stop('SIGTERM');
      assert.equal(code, 0, d.stderr());
      const lines = d.stderr().split('\n');
      const shutdown = lines.findIndex((l) => /SIGTERM, shutting down/.test(l));
      const upload = lines.findIndex((l) => l.includes(`PUT ${target} 400 `));
      assert.ok(upload > shutdown && shutdown >= 0, `the cut upload is logged after the shutdown notice:\n${d.stderr()}`);
      assert.match(lines[upload], /cut short/);
    } finally {
      client.destroy();
      await d.stop();
    }
  });
});
