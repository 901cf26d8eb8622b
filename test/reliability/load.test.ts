// Eight `nix-castore copy` processes at once, with overlapping closures,
// into one daemon: none fails, every PathInfo is present and verifies
// against Nix, and every blob is stored once and intact.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFixture } from '../helpers/copy-fixtures.js';
import { fixtureClosure } from '../helpers/nix.js';
import { startDaemonProcess } from '../helpers/daemon.js';
import { storedBlobs } from '../helpers/stored-blobs.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { blake3 } from '../../src/castore/digest.js';
import { assertStoreMatchesNix, publishedPaths } from '../copy/verify-store.js';
import { runCli } from '../copy/run-cli.js';

it('8 concurrent copies with overlapping closures', async () => {
  const big = await copyFixture('load');
  const small = await fixtureClosure();
  const d = await startDaemonProcess();
  const store = openStore(sameAddr(d.addr));
  try {
    const targets = [big.top, big.top, big.paths.middle, big.paths.tree, small.root, small.root, small.byKey.tree, big.paths.symlink];
    const results = await Promise.all(targets.map((t) => runCli(['copy', '--store', d.addr, '--json', t])));
    for (const [i, r] of results.entries()) assert.equal(r.code, 0, `copy ${i} (${targets[i]}):\n${r.stderr}`);

    const expected = [...new Set([...big.closure, ...(await closureOf(small.root))])].sort();
    assert.deepEqual(await publishedPaths(store), expected);
    await assertStoreMatchesNix(store, expected);

    // Blobs: each stored once, under the digest of its bytes; no temp files left.
    let count = 0;
    for (const [name, data] of await storedBlobs(d.dataDir)) {
      assert.equal(blake3(data).toString('hex'), name);
      count++;
    }
    assert.ok(count > 0);
    assert.deepEqual(await readdir(join(d.dataDir, 'tmp')), []);
    const sent = results.reduce((n, r) => n + JSON.parse(r.stdout).blobsSent, 0);
    assert.ok(sent >= count, 'every stored blob was sent by someone');
  } finally {
    await store.close();
    await d.stop();
  }
});

async function closureOf(path: string): Promise<string[]> {
  const { runNix } = await import('../helpers/nix.js');
  return (await runNix('nix-store', ['-qR', path])).stdout.toString().split('\n').filter(Boolean);
}
