// Over a packing store, room() waits once the store's Puts in flight are
// under way: more uploads only waited for the uploader's limiter, each
// with its promises and closures, most of a copy → S3's heap at its peak.
// A stub store whose Puts stay pending until the test lets them go.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { BlobUploader } from '../../src/upload/blob-uploader.js';
import type { BlobService } from '../../src/castore/blob-service.js';
import { blake3 } from '../../src/castore/digest.js';

const FAST_RETRY = { attempts: 2, baseMs: 1, maxMs: 5 };
const PUTS = 32;

it("a packing store's uploads under way are bounded by its Puts in flight, not the default 8,192", async () => {
  const waiting: (() => void)[] = [];
  const store = {
    putsInFlight: PUTS,
    putSmallUpTo: 1 << 20,
    putWithoutStatUpTo: 1 << 20,
    putSmall: async (bytes: Uint8Array, copied?: () => void) => {
      const digest = blake3(bytes);
      copied?.();
      await new Promise<void>((r) => waiting.push(r));
      return digest;
    },
  } as unknown as BlobService;
  const up = new BlobUploader(store, 4, FAST_RETRY);
  assert.equal(up.maxUploading, PUTS);
  const uploads: Promise<void>[] = [];
  for (let i = 0; i < PUTS; i++) {
    assert.ok(up.hasRoom(16), `room for upload ${i}`);
    const mem = up.memoryFor(16);
    mem.fill(0);
    mem.writeUInt32LE(i, 0);
    uploads.push(up.ensure(blake3(mem), mem.length, { bytes: mem }));
  }
  assert.equal(up.hasRoom(16), false, `no room with ${PUTS} uploads under way`);
  while (waiting.length < PUTS) await new Promise((r) => setImmediate(r));
  for (const w of waiting.splice(0)) w();
  await Promise.all(uploads);
  assert.ok(up.hasRoom(16), 'room again once they are stored');
  assert.equal(up.stats.blobsSent, PUTS);
});
