// A Read whose client is gone before the answer starts (between the
// store's lookup and the response headers): the blob's file, opened by the
// lookup, is closed, not left to the garbage collector. In-process: a real
// node:http2 stream, closed by its client; a real on-disk store.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { DiskBlobService } from '../../src/castore/disk/disk-blob-service.js';
import { DiskLayout } from '../../src/castore/disk/disk-layout.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { LeanCall } from '../../src/server/lean-call.js';
import { serveBlobRead } from '../../src/server/lean-read.js';
import { ByteBudget } from '../../src/util/byte-budget.js';

/** How many of this process's open descriptors point at `path`. */
async function openCount(path: string): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd')) if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')) === path) n++;
  return n;
}

describe('lean Read, client gone before the answer', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'lean-read-gone-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('closes the blob file the lookup opened', async () => {
    const layout = new DiskLayout(join(root, 'store'));
    const blobs = new DiskBlobService(layout, null);
    // Over a pack's largest blob: a file of its own, which the Read opens.
    const digest = await putBytes(blobs, Buffer.alloc(3 << 20, 7));
    const server = createServer();
    const streams: [ServerHttp2Stream, IncomingHttpHeaders][] = [];
    server.on('stream', (s, h) => streams.push([s, h]));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      for (let i = 0; i < 3; i++) {
        const req = client.request({ ':method': 'POST', ':path': '/snix.castore.v1.BlobService/Read', 'content-type': 'application/grpc' });
        req.on('error', () => {});
        while (streams.length === 0) await new Promise((r) => setTimeout(r, 5));
        const [stream, headers] = streams.shift()!;
        const call = new LeanCall(stream, headers, 4 << 20, 'whole', new ByteBudget(64 << 20).holding());
        req.close(); // the client goes away
        await once(stream, 'close');
        await serveBlobRead(call, blobs, digest);
      }
      // Opened by each lookup; a leaked handle would stay open until a collection found it.
      assert.equal(await openCount(layout.objectPath('blobs', digest)), 0, 'the blob file left open');
    } finally {
      client.close();
      server.close();
      await blobs.close();
    }
  });
});
