// Delta uploads over every backend: in-process (DeltaStore over the
// service, its Puts recording hooks) or, for a gRPC store, the daemon's
// BlobDeltaService. The same behaviour either way: a base found by the
// hooks of a changed blob, a blob composed exactly, refusals storing nothing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { BlobService } from '../../src/castore/blob-service.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';
import type { BlobDeltas } from '../../src/castore/delta/delta-messages.js';
import { HookFinder } from '../../src/castore/delta/chunking.js';
import { DeltaStore } from '../../src/castore/delta/delta-store.js';
import { HookIndex } from '../../src/castore/delta/hook-index.js';
import { hookedBlobs } from '../../src/castore/delta/hooked-blobs.js';
import { blake3 } from '../../src/castore/digest.js';
import { isKind } from '../../src/castore/errors.js';
import type { Backend } from './blob-service.suite.js';

function hooksOf(bytes: Buffer): Buffer[] {
  const f = new HookFinder(bytes.length);
  f.push(bytes, 0);
  return f.hooks;
}

async function* ops(...list: ({ offset: number; length: number } | { data: Uint8Array })[]) {
  yield* list;
}

export function blobDeltaSuite(name: string, make: () => Promise<Backend<BlobService>>): void {
  describe(`delta uploads: ${name}`, () => {
    let be: Backend<BlobService>;
    let blobs: BlobService;
    let deltas: BlobDeltas;
    const base = randomBytes(3 << 20);
    before(async () => {
      be = await make();
      const offered = await be.service.deltas?.();
      if (offered) {
        blobs = be.service;
        deltas = offered;
      } else {
        const index = HookIndex.inMemory();
        blobs = hookedBlobs(be.service, index);
        deltas = new DeltaStore(blobs, index);
      }
      await putBytes(blobs, base);
    });
    after(() => be.cleanup());

    it('finds a stored blob by the hooks of a changed copy, and composes a blob from its ranges and new bytes', async () => {
      const found = await deltas.findBase(hooksOf(Buffer.concat([base, Buffer.from('appended')])));
      assert.ok(found, 'a base');
      assert.deepEqual(found.base, blake3(base));
      assert.equal(found.baseSize, base.length);
      assert.equal(found.chunks.reduce((n, c) => n + c.length, 0), base.length);
      const target = Buffer.concat([base.subarray(5, 2 << 20), Buffer.from('new'), base.subarray(0, 5)]);
      const digest = await deltas.putDelta({ digest: blake3(target), size: target.length, base: blake3(base) }, ops({ offset: 5, length: (2 << 20) - 5 }, { data: Buffer.from('new') }, { offset: 0, length: 5 }));
      assert.deepEqual(digest, blake3(target));
      assert.ok((await readAll(blobs, digest))!.equals(target));
    });

    it('refuses a range past the base and a result that is not the digest announced, storing nothing under it', async () => {
      const target = Buffer.concat([base.subarray(0, 1000), Buffer.from('x')]);
      const header = { digest: blake3(target), size: target.length, base: blake3(base) };
      await assert.rejects(deltas.putDelta(header, ops({ offset: base.length - 10, length: 1000 }, { data: Buffer.from('x') })), (err) => isKind(err, 'invalid'));
      await assert.rejects(deltas.putDelta(header, ops({ offset: 1, length: 1000 }, { data: Buffer.from('x') })), (err) => isKind(err, 'invalid'));
      assert.equal(await blobs.stat(header.digest), undefined);
    });
  });
}
