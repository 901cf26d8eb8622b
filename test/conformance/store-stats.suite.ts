// Conformance suite for the stats() of a whole store (every backend's
// blob, directory and PathInfo services): exact figures for known contents.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Store } from '../../src/addr/open.js';
import type { PathInfo } from '../../src/store/messages.js';
import { batchesOf, putBytes } from '../../src/castore/blob-service.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { directoryDigest, directorySize, encodeDirectory } from '../../src/castore/directory.js';
import { blake3 } from '../../src/castore/digest.js';
import { storeStats } from '../../src/store/store-stats.js';
import { b, hex, fixtures, HELLO, HELLO_DIGEST, blobB } from '../helpers/castore-fixtures.js';
import type { Backend } from './blob-service.suite.js';

const HELLO_INFO: PathInfo = {
  node: { type: 'file', name: b('925f1jb1ajrypjbyq7rylwryqwizvhp0-hello.txt'), digest: HELLO_DIGEST, size: 12, executable: false },
  references: [],
  narinfo: { narSize: 128, narSha256: hex('03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040'), signatures: [], referenceNames: [] },
};

export function storeStatsSuite(name: string, make: () => Promise<Backend<Store>>): void {
  describe(`store stats conformance: ${name}`, () => {
    let be: Backend<Store>;
    let store: Store;
    before(async () => {
      be = await make();
      store = be.service;
    });
    after(() => be.cleanup());

    it('counts nothing in an empty store', async () => {
      assert.deepEqual(await storeStats(store), { pathInfos: 0, narBytes: 0, directories: 0, directoryBytes: 0, blobs: 0, blobBytes: 0 });
    });

    it('counts known contents exactly, each blob and directory once', async () => {
      const big = blobB(); // 1,044,480 bytes: a blob file of its own on disk
      await putBytes(store.blobs, HELLO);
      await putBytes(store.blobs, HELLO);
      await putBytes(store.blobs, big);
      await putBytes(store.blobs, new Uint8Array(0));
      const batched = b('x86_64-linux');
      await (await batchesOf(store.blobs)).put([{ digest: blake3(batched), data: batched }]);
      await (await batchesOf(store.blobs)).put([{ digest: HELLO_DIGEST, data: HELLO }]);

      const { WITH_KEEP, COMPLICATED } = fixtures();
      await putClosure(store.directories, [WITH_KEEP, COMPLICATED]);
      await putClosure(store.directories, [WITH_KEEP]);

      await store.pathInfos.put(HELLO_INFO);
      const complicated: PathInfo = {
        node: { type: 'directory', name: b('00bgd045z0d4icpbc2yyz4gx48ak44la-complicated'), digest: directoryDigest(COMPLICATED), size: directorySize(COMPLICATED) },
        references: [],
        narinfo: { narSize: 840, narSha256: new Uint8Array(32), signatures: [], referenceNames: [] },
      };
      await store.pathInfos.put(complicated);
      // Put again with a signature: still one PathInfo.
      await store.pathInfos.put({ ...HELLO_INFO, narinfo: { ...HELLO_INFO.narinfo!, signatures: [{ name: 'k-1', data: new Uint8Array(64) }] } });

      assert.deepEqual(await storeStats(store), {
        pathInfos: 2,
        narBytes: 128 + 840,
        directories: 2,
        directoryBytes: encodeDirectory(WITH_KEEP).length + encodeDirectory(COMPLICATED).length,
        blobs: 4,
        blobBytes: HELLO.length + big.length + 0 + batched.length,
      });
    });
  });
}
