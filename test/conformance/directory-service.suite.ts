// Conformance suite every DirectoryService backend must pass.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { DirectoryService } from '../../src/castore/directory-service.js';
import { putClosure } from '../../src/castore/directory-service.js';
import type { Directory } from '../../src/castore/messages.js';
import { directoryDigest, encodeDirectory } from '../../src/castore/directory.js';
import { blake3 } from '../../src/castore/digest.js';
import { isKind } from '../../src/castore/errors.js';
import { b, hex, emptyDir, dirNode, fixtures, EMPTY_DIGEST } from '../helpers/castore-fixtures.js';
import type { Backend } from './blob-service.suite.js';

async function collect(it: AsyncIterable<Directory>): Promise<Directory[]> {
  const out: Directory[] = [];
  for await (const d of it) out.push(d);
  return out;
}

/** Compares by canonical encoding: backends may hand back Buffers where we built Uint8Arrays. */
function assertSameDir(got: Directory | undefined, want: Directory): void {
  assert.equal(got && encodeDirectory(got).toString('hex'), encodeDirectory(want).toString('hex'));
}

const file = (name: string) => ({ name: b(name), digest: EMPTY_DIGEST, size: 0, executable: false });
const link = (name: string, target = 'x') => ({ name: b(name), target: b(target) });
const unique = (tag: string): Directory => ({ ...emptyDir(), files: [file(`unique-${tag}`)] });

export function directoryServiceSuite(name: string, make: () => Promise<Backend<DirectoryService>>): void {
  describe(`DirectoryService conformance: ${name}`, () => {
    let be: Backend<DirectoryService>;
    let dirs: DirectoryService;
    before(async () => {
      be = await make();
      dirs = be.service;
    });
    after(() => be.cleanup());

    it('stores the empty directory under BLAKE3("")', async () => {
      const root = await putClosure(dirs, [emptyDir()]);
      assert.equal(root.toString('hex'), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
      assertSameDir(await dirs.get(root), emptyDir());
    });

    it('computes the spec digests under both size formulas', async () => {
      const head = fixtures('head');
      const legacy = fixtures('legacy');
      assert.equal(
        (await putClosure(dirs, [head.WITH_KEEP, head.COMPLICATED])).toString('hex'),
        '424a7f6ce08d805d15b428062faae96299a1675d708c3a39261afe38cdd04feb',
      );
      assert.equal(
        (await putClosure(dirs, [legacy.WITH_KEEP, legacy.COMPLICATED])).toString('hex'),
        '3f951a15afd586fb3121ef4d13d582e811ce0e5a7f21c0497fd87490e9e2355a',
      );
      assert.equal(
        (await putClosure(dirs, [head.A, head.B, head.D])).toString('hex'),
        '76cd8b55b37333961c1778ba997e57df92e219926ae5a66c414b810331a77603',
      );
      assert.equal(
        (await putClosure(dirs, [legacy.A, legacy.B, legacy.D])).toString('hex'),
        '99922a5c1801805287a647af73bca0ed7352a5f7f373e54992795bcc4a235213',
      );
      const got = await dirs.get(hex('424a7f6ce08d805d15b428062faae96299a1675d708c3a39261afe38cdd04feb'));
      assertSameDir(got, head.COMPLICATED);
    });

    it('returns a closure root first, breadth-first, each directory once', async () => {
      const { A, B, C, D } = fixtures();
      // E → {c: C, d: D}: A is reachable four times, B once.
      const E: Directory = { ...emptyDir(), directories: [dirNode('c', C), dirNode('d', D)] };
      const root = await putClosure(dirs, [A, B, C, D, E]);
      const got = (await collect(dirs.getRecursive(root))).map((d) => directoryDigest(d).toString('hex'));
      const want = [E, C, D, A, B].map((d) => directoryDigest(d).toString('hex'));
      assert.deepEqual(got, want);
    });

    it('tolerates duplicates in a Put stream', async () => {
      const { A, B } = fixtures();
      const root = await putClosure(dirs, [A, A, B, A]);
      assert.deepEqual(Buffer.from(root), directoryDigest(B));
    });

    it('reports absent directories as undefined / an empty stream', async () => {
      const missing = blake3(b('no such directory'));
      assert.equal(await dirs.get(missing), undefined);
      assert.deepEqual(await collect(dirs.getRecursive(missing)), []);
    });

    it('rejects digests of the wrong length', async () => {
      await assert.rejects(() => dirs.get(new Uint8Array(31)), (e) => isKind(e, 'invalid'));
      await assert.rejects(() => collect(dirs.getRecursive(new Uint8Array(33))), (e) => isKind(e, 'invalid'));
    });

    it('accepts valid sort orders across lists', async () => {
      const ab: Directory = { ...emptyDir(), files: [file('a'), file('b')] };
      await putClosure(dirs, [ab]);
      const mixed: Directory = { ...emptyDir(), files: [file('b'), file('c')], symlinks: [link('a')] };
      assertSameDir(await dirs.get(await putClosure(dirs, [mixed])), mixed);
    });

    // Each case: the closure to upload. The last directory must not end up stored.
    const { A } = fixtures();
    const rejected: [string, () => Directory[]][] = [
      ['name "\\0"', () => [{ ...emptyDir(), files: [file('\0')] }]],
      ['name "."', () => [{ ...emptyDir(), files: [file('.')] }]],
      ['name ".."', () => [{ ...emptyDir(), symlinks: [link('..')] }]],
      ['name "foo/bar"', () => [{ ...emptyDir(), files: [file('foo/bar')] }]],
      ['empty name', () => [{ ...emptyDir(), files: [file('')] }]],
      ['name longer than 255 bytes', () => [{ ...emptyDir(), files: [file('X'.repeat(500))] }]],
      ['a 2-byte DirectoryNode digest', () => [{ ...emptyDir(), directories: [{ name: b('a'), digest: hex('0001'), size: 0 }] }]],
      ['a 31-byte FileNode digest', () => [{ ...emptyDir(), files: [{ ...file('a'), digest: new Uint8Array(31) }] }]],
      ['unsorted [b, a]', () => [A, { ...emptyDir(), directories: [dirNode('b', A), dirNode('a', A)] }]],
      ['duplicate [a, a]', () => [A, { ...emptyDir(), directories: [dirNode('a', A), dirNode('a', A)] }]],
      ['directory a plus symlink a', () => [A, { ...emptyDir(), directories: [dirNode('a', A)], symlinks: [link('a')] }]],
      ['wrong child size', () => [A, { ...emptyDir(), directories: [{ ...dirNode('a', A), size: 42 }] }]],
      ['an unknown child', () => [{ ...emptyDir(), directories: [{ name: b('x'), digest: blake3(b('unknown')), size: 0 }] }]],
      ['empty symlink target', () => [{ ...emptyDir(), symlinks: [link('a', '')] }]],
      ['NUL in symlink target', () => [{ ...emptyDir(), symlinks: [link('a', 'x\0y')] }]],
      ['symlink target over 4095 bytes', () => [{ ...emptyDir(), symlinks: [link('a', 'x'.repeat(4096))] }]],
      ['disconnected roots', () => [unique('r1'), unique('r2')]],
      ['an empty stream', () => []],
    ];
    for (const [label, closure] of rejected) {
      it(`rejects ${label} and stores nothing`, async () => {
        const c = closure();
        await assert.rejects(() => putClosure(dirs, c), (e) => isKind(e, 'invalid'), label);
        for (const d of c) {
          if (d === A) continue;
          assert.equal(await dirs.get(directoryDigest(d)), undefined, `${label}: nothing stored`);
        }
      });
    }

    it('stores nothing from an aborted Put', async () => {
      const child = unique('aborted-child');
      const p = dirs.putter();
      await p.put(child);
      await p.abort();
      assert.equal(await dirs.get(directoryDigest(child)), undefined);
    });

    it('accepts a child size under either formula', async () => {
      const inner = unique('formula');
      for (const f of ['head', 'legacy'] as const) {
        const outer: Directory = { ...emptyDir(), directories: [dirNode('in', inner, f)] };
        assert.deepEqual(Buffer.from(await putClosure(dirs, [inner, outer])), directoryDigest(outer));
      }
    });
  });
}
