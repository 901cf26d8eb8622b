// Stores without batches: small blobs go straight to Put when the store says a Put costs no more
// than a Stat (a daemon over gRPC); everything else is Stat-ed first.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { BlobUploader } from '../../src/upload/blob-uploader.js';
import { DEFAULT_RETRY } from '../../src/upload/retry.js';
import { blake3 } from '../../src/castore/digest.js';
import { blobServiceFromAddr } from '../../src/addr/open.js';
import type { BlobService } from '../../src/castore/blob-service.js';
import { startDaemonProcess } from '../helpers/daemon.js';

/** A real gRPC client to a real daemon, counting the calls made through it. */
function counting(inner: BlobService) {
  const calls = { stat: 0, put: 0 };
  const svc: BlobService = {
    putWithoutStatUpTo: inner.putWithoutStatUpTo,
    stat: (d) => (calls.stat++, inner.stat(d)),
    read: (d) => inner.read(d),
    put: () => (calls.put++, inner.put()),
    close: () => inner.close(),
  };
  return { svc, calls };
}

it('over gRPC: blobs up to 16 KiB are Put without a Stat, larger ones Stat-ed first and skipped when present', async () => {
  const d = await startDaemonProcess();
  const grpc = blobServiceFromAddr(d.addr);
  try {
    assert.equal(grpc.putWithoutStatUpTo, 16 << 10);
    const { svc, calls } = counting(grpc);
    const small = Buffer.alloc(16 << 10, 1);
    const large = Buffer.alloc((16 << 10) + 1, 2);
    const up = new BlobUploader(svc, 4, DEFAULT_RETRY);
    await up.ensure(blake3(small), small.length, { bytes: small });
    await up.ensure(blake3(large), large.length, { bytes: large });
    assert.deepEqual(calls, { stat: 1, put: 2 });

    // Again, in a new run: the small one is sent again (cheap), the large one is found.
    const again = counting(grpc);
    const up2 = new BlobUploader(again.svc, 4, DEFAULT_RETRY);
    await up2.ensure(blake3(small), small.length, { bytes: small });
    await up2.ensure(blake3(large), large.length, { bytes: large });
    assert.deepEqual(again.calls, { stat: 1, put: 1 });
    assert.equal(up2.stats.blobsSkipped, 1);
  } finally {
    await grpc.close();
    await d.stop();
  }
});

it('in-process stores are always Stat-ed first', async () => {
  const mem = blobServiceFromAddr('memory://');
  const { svc, calls } = counting(mem);
  const up = new BlobUploader(svc, 4, DEFAULT_RETRY);
  const tiny = Buffer.from('tiny');
  await up.ensure(blake3(tiny), tiny.length, { bytes: tiny });
  assert.deepEqual(calls, { stat: 1, put: 1 });
  await mem.close();
});
