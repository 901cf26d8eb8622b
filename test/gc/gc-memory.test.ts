// The collector's memory is bounded: a store of ~250,000 objects (written
// straight into its files), collected with --memory 1MiB, so its marks
// and lists spill to scratch files, comes out exactly right — the kept
// and deleted paths, the blobs and directories left (exactly those of the
// kept paths), fsck --nar clean — and the scratch files are gone.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storedBlobs, storedDirectories } from '../helpers/stored-blobs.js';
import type { GcReport } from '../../src/gc/report.js';
import { cli } from './gc-fixture.js';
import { writeSyntheticStore, type SynthPath } from './synthetic-store.js';

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'gc-memory-'));
});
after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function union(paths: SynthPath[], what: 'blobs' | 'directories'): string[] {
  const out = new Set<string>();
  for (const p of paths) for (const d of p[what]) out.add(d);
  return [...out].sort();
}

describe('gc within a memory budget', () => {
  it('collects a store of ~250,000 objects exactly with --memory 1MiB (spilling), fsck --nar clean', { timeout: 30 * 60_000 }, async () => {
    const root = join(tmp, 'data');
    const paths = await writeSyntheticStore(root, { paths: 400, dirs: 40, files: 14, group: 50 });
    const kept = new Set<number>();
    paths.forEach((p, i) => {
      if (p.old) return;
      kept.add(i);
      for (const r of p.refs) kept.add(r);
    });
    const keptPaths = paths.filter((_, i) => kept.has(i));
    const deletedPaths = paths.filter((_, i) => !kept.has(i));
    const before = { blobs: union(paths, 'blobs').length, directories: union(paths, 'directories').length };
    assert.ok(before.blobs + before.directories > 240_000, `objects in the store: ${JSON.stringify(before)}`);

    const r = await cli(['gc', '--data', root, '--keep-since', '30d', '--grace', '0', '--memory', '1MiB', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as GcReport;
    assert.deepEqual(report.memory, { budgetBytes: 1 << 20, spilled: true }, 'the marks went to scratch files');
    assert.deepEqual(report.deleted, deletedPaths.map((p) => p.name).sort());
    assert.deepEqual(report.kept.map((k) => k.path).sort(), keptPaths.map((p) => p.name).sort());
    assert.ok(report.kept.some((k) => k.reason === 'reference'), 'old paths referred to by kept ones stay');

    const liveBlobs = union(keptPaths, 'blobs');
    const liveDirs = union(keptPaths, 'directories');
    assert.deepEqual([...(await storedBlobs(root)).keys()].sort(), liveBlobs, 'the blobs left are exactly those of the kept paths');
    assert.deepEqual([...(await storedDirectories(root)).keys()].sort(), liveDirs, 'and so are the directories');
    assert.equal(report.blobs.deleted, before.blobs - liveBlobs.length);
    assert.equal(report.directories.deleted, before.directories - liveDirs.length);
    assert.ok(report.bytes.reclaimed > 0);
    process.stderr.write(`gc-memory: ${before.blobs} blobs, ${before.directories} directories; peak RSS ${report.peakRssMiB} MiB, ${report.seconds} s\n`);

    assert.deepEqual((await readdir(join(root, 'gc'))).filter((f) => f.startsWith('scratch-')), [], 'no scratch files left');
    const fsck = await cli(['fsck', '--data', root, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    const again = await cli(['gc', '--data', root, '--keep-since', '30d', '--grace', '0', '--memory', '1MiB', '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual((JSON.parse(again.stdout) as GcReport).deleted, [], 'nothing more to delete');
  });

  it('refuses a budget below 1MiB or without a unit it knows, changing nothing', async () => {
    const root = join(tmp, 'refused');
    for (const m of ['100K', '5 parsecs']) {
      const r = await cli(['gc', '--data', root, '--keep-since', '30d', '--memory', m]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--memory/);
    }
  });
});
