// Small blobs to a store with batches (nixcastore.v1.BlobBatchService) go
// hundreds per call, each still asked about before it is sent; a server
// without the service (any other tvix-store) gets one call per blob. Real
// daemons and a real grpc-js server, over real sockets.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { BlobUploader } from '../../src/upload/blob-uploader.js';
import { blake3 } from '../../src/castore/digest.js';
import { readAll, type BlobBatches, type BlobService } from '../../src/castore/blob-service.js';
import { CastoreError } from '../../src/castore/errors.js';
import { blobServiceDef } from '../../src/grpc/definitions.js';
import { blobHandlers } from '../../src/server/handlers.js';
import { blobServiceFromAddr, openStore, sameAddr } from '../../src/addr/open.js';
import { AUTH_TOKEN_FILE_ENV } from '../../src/grpc/client-settings.js';
import { startDaemonProcess } from '../helpers/daemon.js';
import { noUploads } from '../../src/upload/batch-queue.js';

const FAST_RETRY = { attempts: 2, baseMs: 1, maxMs: 5 };

/** `inner` with its batches counted (calls and blobs per call). */
function countingBatches(inner: BlobService) {
  const calls = { has: 0, put: 0, largestPut: 0 };
  const svc: BlobService = {
    stat: (d) => inner.stat(d),
    read: (d) => inner.read(d),
    put: () => inner.put(),
    close: () => inner.close(),
    batches: async () => {
      const b = await inner.batches!();
      if (!b) return undefined;
      const counted: BlobBatches = {
        maxPutBytes: b.maxPutBytes,
        has: (digests) => (calls.has++, b.has(digests)),
        put: (blobs) => {
          calls.put++;
          calls.largestPut = Math.max(calls.largestPut, blobs.reduce((n, x) => n + x.data.length, 0));
          return b.put(blobs);
        },
      };
      return counted;
    },
  };
  return { svc, calls };
}

const smallBlobs = (n: number, max: number): Buffer[] => Array.from({ length: n }, (_, i) => Buffer.concat([Buffer.from(`blob ${i} `), randomBytes(Math.floor(Math.random() * max))]));

it('a daemon takes 3,000 small blobs in a few dozen calls; a second run finds them all and sends none', async () => {
  const d = await startDaemonProcess();
  const grpcBlobs = blobServiceFromAddr(d.addr);
  try {
    const blobs = [...smallBlobs(3000, 20_000), Buffer.alloc(0)];
    const first = countingBatches(grpcBlobs);
    const up = new BlobUploader(first.svc, 16, FAST_RETRY);
    await Promise.all(blobs.map((b) => up.ensure(blake3(b), b.length, { bytes: b })));
    assert.equal(up.stats.blobsSent, blobs.length);
    assert.equal(up.stats.bytesSent, blobs.reduce((n, b) => n + b.length, 0));
    assert.ok(first.calls.put >= 1 && first.calls.put <= 60, `${first.calls.put} batch Puts for ${blobs.length} blobs`);
    assert.ok(first.calls.has <= 60, `${first.calls.has} batch Has calls`);
    for (const b of [blobs[0], blobs[1234], blobs[blobs.length - 1]]) assert.deepEqual(await readAll(grpcBlobs, blake3(b)), b);

    const again = countingBatches(grpcBlobs);
    const up2 = new BlobUploader(again.svc, 16, FAST_RETRY);
    await Promise.all(blobs.map((b) => up2.ensure(blake3(b), b.length, { bytes: b })));
    assert.deepEqual(up2.stats, { ...noUploads(), blobsSkipped: blobs.length });
    assert.equal(again.calls.put, 0);
  } finally {
    await grpcBlobs.close();
    await d.stop();
  }
});

it("batches stay within the daemon's message size limit", async () => {
  const d = await startDaemonProcess({ args: ['--store', 'memory://', '--max-message-size', '1M'] });
  const grpcBlobs = blobServiceFromAddr(d.addr);
  try {
    const batches = (await grpcBlobs.batches!())!;
    assert.ok(batches.maxPutBytes < 1 << 20, `maxPutBytes ${batches.maxPutBytes}`);
    const blobs = smallBlobs(60, 200_000);
    const c = countingBatches(grpcBlobs);
    const up = new BlobUploader(c.svc, 16, FAST_RETRY);
    await Promise.all(blobs.map((b) => up.ensure(blake3(b), b.length, { bytes: b })));
    assert.equal(up.stats.blobsSent, blobs.length);
    assert.ok(c.calls.largestPut < 1 << 20, `a batch carried ${c.calls.largestPut} bytes`);
  } finally {
    await grpcBlobs.close();
    await d.stop();
  }
});

it('a server with only tvix.castore.v1.BlobService: no batches, one call per blob, same result', async () => {
  const store = openStore(sameAddr('memory://'));
  const server = new grpc.Server();
  server.addService(blobServiceDef(), blobHandlers(store));
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const grpcBlobs = blobServiceFromAddr(`grpc+http://127.0.0.1:${port}`);
  try {
    assert.equal(await grpcBlobs.batches!(), undefined);
    const blobs = smallBlobs(200, 30_000);
    const up = new BlobUploader(grpcBlobs, 16, FAST_RETRY);
    await Promise.all(blobs.map((b) => up.ensure(blake3(b), b.length, { bytes: b })));
    assert.equal(up.stats.blobsSent, blobs.length);
    for (const b of blobs) assert.ok(await store.blobs.stat(blake3(b)));
  } finally {
    await grpcBlobs.close();
    server.forceShutdown();
    await store.close();
  }
});

it('a read-only daemon answers Has and refuses a batch Put', async () => {
  const ro = await startDaemonProcess({ args: ['--store', 'memory://', '--read-only'] });
  const grpcBlobs = blobServiceFromAddr(ro.addr);
  try {
    const b = Buffer.from('refused in a batch');
    const batches = (await grpcBlobs.batches!())!;
    assert.deepEqual(await batches.has([blake3(b)]), [false]);
    await assert.rejects(batches.put([{ digest: blake3(b), data: b }]), (err) => err instanceof CastoreError && err.kind === 'read-only');
    const up = new BlobUploader(grpcBlobs, 4, FAST_RETRY);
    await assert.rejects(up.ensure(blake3(b), b.length, { bytes: b }), (err) => err instanceof CastoreError && err.kind === 'read-only');
  } finally {
    await grpcBlobs.close();
    await ro.stop();
  }
});

it('a daemon with --auth-token-file takes batch Puts only with the token', async () => {
  const tokenFile = join(await mkdtemp(join(tmpdir(), 'batch-token-')), 'token');
  await writeFile(tokenFile, 'batch-secret\n');
  const d = await startDaemonProcess({ args: ['--store', 'memory://', '--auth-token-file', tokenFile] });
  const b = Buffer.from('needs the token');
  const saved = process.env[AUTH_TOKEN_FILE_ENV];
  try {
    delete process.env[AUTH_TOKEN_FILE_ENV];
    const anonymous = blobServiceFromAddr(d.addr);
    const open = (await anonymous.batches!())!;
    await assert.rejects(open.put([{ digest: blake3(b), data: b }]), (err) => err instanceof CastoreError && err.kind === 'unauthenticated');
    await anonymous.close();

    process.env[AUTH_TOKEN_FILE_ENV] = tokenFile;
    const withToken = blobServiceFromAddr(d.addr);
    await (await withToken.batches!())!.put([{ digest: blake3(b), data: b }]);
    assert.deepEqual(await readAll(withToken, blake3(b)), b);
    await withToken.close();
  } finally {
    if (saved === undefined) delete process.env[AUTH_TOKEN_FILE_ENV];
    else process.env[AUTH_TOKEN_FILE_ENV] = saved;
    await d.stop();
    await rm(dirname(tokenFile), { recursive: true, force: true });
  }
});
