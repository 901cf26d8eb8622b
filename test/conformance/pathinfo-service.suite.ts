// Conformance suite every PathInfoService backend must pass. It needs the
// castore behind the service, to upload content first.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Store } from '../../src/addr/open.js';
import { PathInfoCodec, type PathInfo } from '../../src/store/messages.js';
import type { Node } from '../../src/castore/messages.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import { blake3 } from '../../src/castore/digest.js';
import { isKind } from '../../src/castore/errors.js';
import { parseBasename } from '../../src/nix/store-path.js';
import { b, hex, fixtures, HELLO, HELLO_DIGEST, emptyDir } from '../helpers/castore-fixtures.js';
import type { Backend } from './blob-service.suite.js';

const HELLO_BASENAME = '925f1jb1ajrypjbyq7rylwryqwizvhp0-hello.txt';
const HELLO_NAR_SHA256 = hex('03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040');

function helloInfo(overrides: Partial<PathInfo> = {}): PathInfo {
  return {
    node: { type: 'file', name: b(HELLO_BASENAME), digest: HELLO_DIGEST, size: 12, executable: false },
    references: [],
    narinfo: { narSize: 128, narSha256: HELLO_NAR_SHA256, signatures: [], referenceNames: [] },
    ...overrides,
  };
}

/** Compares by encoding: backends may hand back Buffers where we built Uint8Arrays. */
function assertSameInfo(got: PathInfo | undefined, want: PathInfo | undefined): void {
  assert.deepEqual(got && PathInfoCodec.encode(got).toString('hex'), want && PathInfoCodec.encode(want).toString('hex'));
}

const digestOf = (basename: string) => parseBasename(basename).digest;

export function pathInfoServiceSuite(name: string, make: () => Promise<Backend<Store>>): void {
  describe(`PathInfoService conformance: ${name}`, () => {
    let be: Backend<Store>;
    let store: Store;
    before(async () => {
      be = await make();
      store = be.service;
    });
    after(() => be.cleanup());

    it('refuses a PathInfo whose blob is missing, then accepts it once uploaded', async () => {
      await assert.rejects(() => store.pathInfos.put(helloInfo()), (e) => isKind(e, 'precondition'));
      assert.equal(await store.pathInfos.get(digestOf(HELLO_BASENAME)), undefined);
      await putBytes(store.blobs, HELLO);
      const info = helloInfo();
      await store.pathInfos.put(info);
      assertSameInfo(await store.pathInfos.get(digestOf(HELLO_BASENAME)), info);
    });

    it('refuses a PathInfo whose file entry states another size than its blob has', async (t) => {
      if (!store.blobs.sizeOf) return t.skip('this backend cannot tell sizes cheaply');
      await putBytes(store.blobs, HELLO);
      const wrongRoot = helloInfo({ node: { type: 'file', name: b('0vmz2z1hdqkx4sp3ss0jwzjm1p8hrl04-hello-sized'), digest: HELLO_DIGEST, size: 1, executable: false } });
      await assert.rejects(() => store.pathInfos.put(wrongRoot), (e) => isKind(e, 'invalid') && /states size 1, but its blob .* has 12 bytes/.test((e as Error).message));
      const dir = { ...emptyDir(), files: [{ name: b('h'), digest: HELLO_DIGEST, size: 13, executable: false }] };
      await putClosure(store.directories, [dir]);
      const name = '1vmz2z1hdqkx4sp3ss0jwzjm1p8hrl04-dir-sized';
      const node: Node = { type: 'directory', name: b(name), digest: directoryDigest(dir), size: directorySize(dir) };
      await assert.rejects(() => store.pathInfos.put(helloInfo({ node })), (e) => isKind(e, 'invalid') && /file 'h' states size 13/.test((e as Error).message));
      assert.equal(await store.pathInfos.get(digestOf(name)), undefined);
    });

    it('lists what it stores', async () => {
      const names: string[] = [];
      for await (const i of store.pathInfos.list()) names.push(Buffer.from(i.node!.name).toString());
      assert.ok(names.includes(HELLO_BASENAME));
    });

    it('refuses a directory root that is missing or incomplete', async () => {
      const { WITH_KEEP, COMPLICATED } = fixtures();
      const node: Node = {
        type: 'directory',
        name: b('00bgd045z0d4icpbc2yyz4gx48ak44la-complicated'),
        digest: directoryDigest(COMPLICATED),
        size: directorySize(COMPLICATED),
      };
      const info: PathInfo = { node, references: [], narinfo: { narSize: 840, narSha256: new Uint8Array(32), signatures: [], referenceNames: [] } };
      await assert.rejects(() => store.pathInfos.put(info), (e) => isKind(e, 'precondition'), 'no directories yet');
      // Directories present, but a file's blob is not:
      const withBlob = { ...emptyDir(), files: [{ name: b('f'), digest: blake3(b('never uploaded')), size: 14, executable: false }] };
      await putClosure(store.directories, [withBlob]);
      const node2: Node = { ...node, digest: directoryDigest(withBlob), size: directorySize(withBlob) };
      await assert.rejects(() => store.pathInfos.put({ ...info, node: node2 }), (e) => isKind(e, 'precondition'), 'blob missing');
      await putBytes(store.blobs, new Uint8Array(0));
      await putClosure(store.directories, [WITH_KEEP, COMPLICATED]);
      await store.pathInfos.put(info);
      assert.ok(await store.pathInfos.get(digestOf('00bgd045z0d4icpbc2yyz4gx48ak44la-complicated')));
    });

    it('stores nothing for a Put whose signal has aborted (its client went away)', async () => {
      const { WITH_KEEP, COMPLICATED } = fixtures();
      await putBytes(store.blobs, new Uint8Array(0));
      await putClosure(store.directories, [WITH_KEEP, COMPLICATED]);
      const name = '10bgd045z0d4icpbc2yyz4gx48ak44la-abandoned';
      const node: Node = { type: 'directory', name: b(name), digest: directoryDigest(COMPLICATED), size: directorySize(COMPLICATED) };
      const info: PathInfo = { node, references: [], narinfo: { narSize: 840, narSha256: new Uint8Array(32), signatures: [], referenceNames: [] } };
      const gone = new AbortController();
      gone.abort(new Error('the client went away'));
      await assert.rejects(() => store.pathInfos.put(info, gone.signal), /the client went away/);
      assert.equal(await store.pathInfos.get(digestOf(name)), undefined);
    });

    it('calculates NARs matching the spec vectors', async () => {
      await putBytes(store.blobs, HELLO);
      await putBytes(store.blobs, new Uint8Array(0));
      const { WITH_KEEP, COMPLICATED } = fixtures();
      await putClosure(store.directories, [WITH_KEEP, COMPLICATED]);
      const cases: [Node, number, string][] = [
        [{ type: 'file', name: new Uint8Array(0), digest: HELLO_DIGEST, size: 12, executable: false }, 128, '03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040'],
        [{ type: 'file', name: b('hello.txt'), digest: HELLO_DIGEST, size: 12, executable: true }, 160, '3b63b97bae149b3e6650437b9077c3d75b130192145792ec94ea3af96a8c567a'],
        [{ type: 'symlink', name: new Uint8Array(0), target: b('/nix/store/somewhereelse') }, 136, '097d397e9b5826384eaa16c457715d1c1a51670313ead0f58566e0b232539cf1'],
        [{ type: 'directory', name: new Uint8Array(0), digest: directoryDigest(COMPLICATED), size: directorySize(COMPLICATED) }, 840, 'ebd52279a8df024c9fd5718de4103bf5e760dc7f2cf49044ee7dea87ab16911a'],
      ];
      for (const [node, size, sha] of cases) {
        const r = await store.pathInfos.calculateNar(node);
        assert.equal(r.narSize, size);
        assert.equal(Buffer.from(r.narSha256).toString('hex'), sha);
      }
    });

    it('fails CalculateNAR with a storage error when content is missing or short', async () => {
      const missing: Node = { type: 'file', name: new Uint8Array(0), digest: blake3(b('absent')), size: 6, executable: false };
      await assert.rejects(() => store.pathInfos.calculateNar(missing), (e) => isKind(e, 'storage'));
      await putBytes(store.blobs, HELLO);
      const wrongSize: Node = { type: 'file', name: new Uint8Array(0), digest: HELLO_DIGEST, size: 13, executable: false };
      await assert.rejects(() => store.pathInfos.calculateNar(wrongSize), (e) => isKind(e, 'storage'));
    });

    it('overwrites a PathInfo stored under the same store path', async () => {
      await putBytes(store.blobs, HELLO);
      const sig = { name: 'test-1', data: new Uint8Array(64).fill(7) };
      const info = helloInfo({ narinfo: { ...helloInfo().narinfo!, signatures: [sig] } });
      await store.pathInfos.put(info);
      assertSameInfo(await store.pathInfos.get(digestOf(HELLO_BASENAME)), info);
    });

    it('rejects a lookup digest of the wrong length', async () => {
      await assert.rejects(() => store.pathInfos.get(new Uint8Array(32)), (e) => isKind(e, 'invalid'));
    });

    const ref = '00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p20170221182432';
    const ni = () => helloInfo().narinfo!;
    const invalidInfos: [string, () => PathInfo][] = [
      ['no node', () => ({ ...helloInfo(), node: undefined })],
      ['no narinfo', () => ({ ...helloInfo(), narinfo: undefined })],
      ['a root name that is no store path', () => helloInfo({ node: { ...(helloInfo().node as Node), name: b('hello.txt') } })],
      ['a root name with a bad hash', () => helloInfo({ node: { ...(helloInfo().node as Node), name: b('e25f1jb1ajrypjbyq7rylwryqwizvhp0-hello.txt') } })],
      ['a root digest of 31 bytes', () => helloInfo({ node: { ...(helloInfo().node as Node), digest: new Uint8Array(31) } as Node })],
      ['references without reference_names', () => helloInfo({ references: [digestOf(ref)] })],
      ['reference_names without references', () => helloInfo({ narinfo: { ...ni(), referenceNames: [ref] } })],
      ['a reference of 19 bytes', () => helloInfo({ references: [new Uint8Array(19)], narinfo: { ...ni(), referenceNames: [ref] } })],
      ['a reference_name not matching its reference', () => helloInfo({ references: [new Uint8Array(20)], narinfo: { ...ni(), referenceNames: [ref] } })],
      ['a nar_sha256 of 20 bytes', () => helloInfo({ narinfo: { ...ni(), narSha256: new Uint8Array(20) } })],
      ['a signature of 63 bytes', () => helloInfo({ narinfo: { ...ni(), signatures: [{ name: 'k', data: new Uint8Array(63) }] } })],
      ['an unknown ca type', () => helloInfo({ narinfo: { ...ni(), ca: { type: 9, digest: new Uint8Array(32) } } })],
      ['a ca digest of the wrong length', () => helloInfo({ narinfo: { ...ni(), ca: { type: 0, digest: new Uint8Array(20) } } })],
      ['a deriver with a 10-byte digest', () => helloInfo({ narinfo: { ...ni(), deriver: { name: 'hello', digest: new Uint8Array(10) } } })],
      ['a deriver with an invalid name', () => helloInfo({ narinfo: { ...ni(), deriver: { name: 'no spaces', digest: new Uint8Array(20) } } })],
    ];
    for (const [label, make] of invalidInfos) {
      it(`rejects a PathInfo with ${label} and stores nothing`, async () => {
        await putBytes(store.blobs, HELLO);
        const info = make();
        const before = await store.pathInfos.get(digestOf(HELLO_BASENAME));
        await assert.rejects(() => store.pathInfos.put(info), (e) => isKind(e, 'invalid'), label);
        assertSameInfo(await store.pathInfos.get(digestOf(HELLO_BASENAME)), before);
      });
    }

    it('accepts references, deriver, signatures and ca', async () => {
      await putBytes(store.blobs, HELLO);
      const info = helloInfo({
        references: [digestOf(HELLO_BASENAME), digestOf(ref)],
        narinfo: {
          ...ni(),
          referenceNames: [HELLO_BASENAME, ref],
          deriver: { name: 'hello', digest: digestOf(ref) },
          ca: { type: 0, digest: HELLO_NAR_SHA256 },
          signatures: [{ name: 'cache.example.com-1', data: new Uint8Array(64).fill(1) }],
        },
      });
      await store.pathInfos.put(info);
      assertSameInfo(await store.pathInfos.get(digestOf(HELLO_BASENAME)), info);
    });
  });
}
