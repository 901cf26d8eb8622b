// The NAR writer must produce exactly what real Nix produces: for every path of
// the fixture closure, writeNar(filesystem adapter) == `nix-store --dump`,
// byte for byte, and its sha256/size match `nix path-info`'s narHash/narSize.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat } from 'node:fs/promises';
import { writeNar } from '../../src/nix/nar.js';
import { fsNarNode } from '../helpers/fs-nar.js';
import {
  FIXTURE_PATHS,
  fixtureClosure,
  nixPathInfo,
  nixStoreDump,
  type FixtureClosure,
  type NixPathInfo,
} from '../helpers/nix.js';

async function narOf(path: string): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of writeNar(await fsNarNode(path))) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function describeMismatch(actual: Buffer, expected: Buffer): string {
  let i = 0;
  const n = Math.min(actual.length, expected.length);
  while (i < n && actual[i] === expected[i]) i++;
  const from = Math.max(0, i - 16);
  const hex = (b: Buffer) => b.subarray(from, i + 32).toString('hex');
  return (
    `NAR differs: ours ${actual.length} bytes, nix-store --dump ${expected.length} bytes; ` +
    `first difference at byte ${i}\n  ours:     …${hex(actual)}\n  expected: …${hex(expected)} (from byte ${from})`
  );
}

// Shared by every test (not a `before` hook) so that each test, not just the
// suite, fails with the clear "Nix is missing" message.
let setup: Promise<{ fixture: FixtureClosure; infos: Map<string, NixPathInfo> }> | undefined;
function ready() {
  setup ??= (async () => {
    const fixture = await fixtureClosure();
    const list = await nixPathInfo(fixture.root, { recursive: true });
    return { fixture, infos: new Map(list.map((i) => [i.path, i])) };
  })();
  return setup;
}

describe('NAR writer vs nix-store --dump on the fixture closure', () => {
  test('the fixture closure is what the tests expect', async () => {
    const { fixture, infos } = await ready();
    assert.deepEqual([...infos.keys()].sort(), fixture.paths.map((p) => p.path).sort());
    assert.ok(infos.get(fixture.root)?.references?.includes(fixture.root), 'root refers to itself');
    const kinds = Object.fromEntries(
      await Promise.all(
        fixture.paths.map(async (p) => {
          const st = await lstat(p.path);
          const kind = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'directory' : 'regular';
          return [p.key, kind];
        }),
      ),
    );
    assert.deepEqual(kinds, { tree: 'directory', file: 'regular', exe: 'regular', symlink: 'symlink', emptyDir: 'directory' });
  });

  for (const { key, description } of FIXTURE_PATHS) {
    test(`${key}: ${description}`, async () => {
      const { fixture, infos } = await ready();
      const path = fixture.byKey[key];
      const [ours, expected] = await Promise.all([narOf(path), nixStoreDump(path)]);
      assert.ok(ours.equals(expected), describeMismatch(ours, expected));

      const info = infos.get(path);
      assert.ok(info, `nix path-info has no entry for ${path}`);
      assert.equal(ours.length, info.narSize);
      assert.equal(`sha256-${createHash('sha256').update(ours).digest('base64')}`, info.narHash);
    });
  }
});
